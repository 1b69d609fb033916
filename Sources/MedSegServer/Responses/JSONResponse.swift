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
