import HTTPTypes
import Hummingbird
import HummingbirdCore
import MedSegData
import NIOCore

/// `/dicts` query options.
struct DictQuery {
    static let known = ["pretty", "scan_id", "subject_id", "time_point", "aug", "offset", "limit"]

    var filter = DictFilter()
    var offset = 0
    var limit: Int?

    init(_ query: QueryParameters) throws(APIError) {
        filter.scanID = query["scan_id"]
        filter.subjectID = try query.integer("subject_id")
        filter.timePoint = try query.integer("time_point")
        filter.aug = try query.integer("aug")
        offset = try query.integer("offset") ?? 0
        limit = try query.integer("limit")
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
            json.finishLine()
            try await writer.write(ByteBuffer(bytes: json.takeBytes()))
            try await writer.finish(nil)
        }
        return Response(
            status: .ok,
            headers: [.contentType: "application/json; charset=utf-8", HTTPField.Name("X-Total-Count")!: String(total)],
            body: body)
    }
}
