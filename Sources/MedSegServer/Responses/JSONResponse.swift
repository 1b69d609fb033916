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
        response(JSONWriter.encode(value, pretty: pretty, line: true), status: status)
    }

    /// An `Encodable` value in the same style as every other body: encoded compactly with sorted
    /// keys, then written by `JSONWriter` (one pretty style, `"key": value`, a final newline).
    public static func make(_ value: some Encodable, pretty: Bool, status: HTTPResponse.Status = .ok) -> Response {
        let encoder = JSONEncoder()
        // Sorted: the same body gives the same bytes (JSONEncoder's own order varies by process).
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // JSON has no infinity or NaN (a fingerprint of a file holding them): sent as strings.
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        // Encoding these plain structs of strings and numbers cannot fail, nor parsing what it wrote.
        let compact: [UInt8] = (try? encoder.encode(value)).map { [UInt8]($0) } ?? []
        guard let parsed = try? JSONParser.parse(compact, maxDepth: 64) else { return response(compact + [0x0A], status: status) }
        return make(parsed, pretty: pretty, status: status)
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
