import HTTPTypes
import Hummingbird
import HummingbirdCore
import MedSegData
import NIOCore

/// `/dicts` query options.
struct DictQuery {
    var filter = DictFilter()
    var offset = 0
    var limit: Int?

    init(_ parameters: FlatDictionary<Substring, Substring>) throws(APIError) {
        filter.scanID = parameters["scan_id"].map(String.init)
        filter.subjectID = try parameters.integer("subject_id")
        filter.timePoint = try parameters.integer("time_point")
        filter.aug = try parameters.integer("aug")
        offset = try parameters.integer("offset") ?? 0
        limit = try parameters.integer("limit")
    }
}

extension FlatDictionary<Substring, Substring> {
    /// A non-negative whole-number query parameter, or 400 naming it.
    func integer(_ name: String) throws(APIError) -> Int? {
        guard let text = self[Substring(name)] else { return nil }
        guard let value = Int(text), value >= 0 else {
            throw APIError.badRequest("query parameter '\(name)' must be a non-negative whole number, not '\(text.prefix(50))'")
        }
        return value
    }
}

/// Writes a dict list as a JSON array in 64 KiB pieces, so a million dicts never become one string.
enum DictStream {
    static let chunkBytes = 64 * 1024

    static func response(entry: CatalogEntry, query: DictQuery, pretty: Bool) -> Response {
        let (indices, total) = entry.select(query.filter, offset: query.offset, limit: query.limit)
        let body = ResponseBody { writer in
            var json = JSONWriter(pretty: pretty, reserving: chunkBytes + 4096)
            json.beginArray()
            for index in indices {
                entry.dicts[index].write(to: &json)
                if json.bytes.count >= chunkBytes {
                    try await writer.write(ByteBuffer(bytes: json.takeBytes()))
                }
            }
            json.endArray()
            json.finish()
            try await writer.write(ByteBuffer(bytes: json.takeBytes()))
            try await writer.finish(nil)
        }
        return Response(
            status: .ok,
            headers: [.contentType: "application/json; charset=utf-8", HTTPField.Name("X-Total-Count")!: String(total)],
            body: body)
    }
}
