public import HTTPTypes
public import Hummingbird
public import MedSegData
import NIOCore

/// JSON bodies for the catalog routes and errors.
public enum JSONResponse {
    public static func make(_ value: JSONValue, pretty: Bool, status: HTTPResponse.Status = .ok) -> Response {
        let bytes = JSONWriter.encode(value, pretty: pretty)
        return Response(
            status: status,
            headers: [.contentType: "application/json; charset=utf-8"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}

extension Request {
    /// `?pretty=1` (or `true`) asks for indented JSON. Lenient: error responses use it too.
    var wantsPrettyJSON: Bool {
        guard let value = uri.queryParameters["pretty"] else { return false }
        return value == "1" || value == "true" || value.isEmpty
    }

    /// `?pretty=` checked: 1, true, 0 or false; anything else is a 400.
    var prettyOption: Bool {
        get throws(APIError) {
            guard let value = uri.queryParameters["pretty"] else { return false }
            switch value {
            case "1", "true", "": return true
            case "0", "false": return false
            default: throw APIError.badRequest("pretty must be 1, true, 0 or false, not '\(value.prefix(40))'")
            }
        }
    }
}
