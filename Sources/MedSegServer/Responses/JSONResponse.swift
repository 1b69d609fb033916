import FoundationEssentials
public import HTTPTypes
public import Hummingbird
public import MedSegData
import NIOCore

/// JSON bodies. Fixed-shape bodies (errors, health) are `Encodable` values; the catalog's own
/// JSON (dataset dicts, MetadataCatalog entries, summaries that carry them) is a `JSONValue`
/// written by `JSONWriter`, which keeps MedSegPy's key order and streams long dict lists.
public enum JSONResponse {
    public static func make(_ value: JSONValue, pretty: Bool, status: HTTPResponse.Status = .ok) -> Response {
        response(JSONWriter.encode(value, pretty: pretty), status: status)
    }

    public static func make(_ value: some Encodable, pretty: Bool, status: HTTPResponse.Status = .ok) -> Response {
        let encoder = JSONEncoder()
        // Sorted: the same body gives the same bytes (JSONEncoder's own order varies by process).
        encoder.outputFormatting = pretty ? [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        // JSON has no infinity or NaN (a fingerprint of a file holding them): sent as strings.
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        // Encoding these plain structs of strings and numbers cannot fail.
        var bytes: [UInt8] = (try? encoder.encode(value)).map { [UInt8]($0) } ?? []
        if pretty { bytes.append(0x0A) }
        return response(bytes, status: status)
    }

    private static func response(_ bytes: [UInt8], status: HTTPResponse.Status) -> Response {
        Response(
            status: status,
            headers: [.contentType: "application/json; charset=utf-8"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}

/// `{"error": {"code": ..., "message": ...}}`
struct ErrorBody: Encodable {
    struct Detail: Encodable {
        var code: String
        var message: String
    }

    var error: Detail
}

/// `/healthz` and `/readyz`.
struct HealthStatus: Encodable {
    var status: String
    var datasets: Int?
}
