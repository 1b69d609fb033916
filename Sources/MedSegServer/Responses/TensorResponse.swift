import HDF5  // DType only: the server never calls the HDF5 library.
import HTTPTypes
import Hummingbird
import HummingbirdCore
import MedSegData
import NIOCore

/// Builds tensor responses: npy, raw or npz bodies with `Content-Length`, strong ETags, and
/// streaming of large arrays chunk by chunk (each chunk read on the blocking pool only when the
/// client has taken the previous one, so a slow client never makes the server buffer a volume).
enum TensorResponse {
    /// One array as `.npy` or raw bytes.
    static func single(
        _ source: any TensorSource, encoding: TensorEncoding, etag: String?, isHead: Bool, limit: ByteSize
    ) async throws -> Response {
        let header = encoding == .npy ? NPY.header(for: source.layout) : []
        let length = header.count + source.layout.byteCount
        var headers: HTTPFields = [
            .contentType: encoding.mediaType,
            .tensorDtype: source.layout.dtype.numpyDescriptor,
            .tensorShape: source.layout.shape.map(String.init).joined(separator: ","),
        ]
        if let etag { headers[.eTag] = etag }
        guard let arrays = try await prepare([source], length: length, limit: limit, isHead: isHead) else {
            return Response(status: .ok, headers: headers, body: emptyBody(length))
        }
        return Response(status: .ok, headers: headers, body: ResponseBody(contentLength: length) { writer in
            var crc: CRC32?
            if !header.isEmpty { try await writer.write(ByteBuffer(bytes: header)) }
            try await write(arrays, to: &writer, crc: &crc)
            try await writer.finish(nil)
        })
    }

    /// A named `.npz` member: one array, or several stacked on a new first axis (a batch).
    struct Member: Sendable {
        var name: String
        var sources: [any TensorSource]
        var stacked: Bool

        var layout: TensorLayout {
            let first = sources[0].layout
            return stacked ? TensorLayout(dtype: first.dtype, shape: [sources.count] + first.shape) : first
        }
    }

    static func archive(_ members: [Member], etag: String?, isHead: Bool, limit: ByteSize) async throws -> Response {
        let layout = NPZLayout(members: members.map {
            NPZLayout.Member(name: $0.name + ".npy", npyHeader: NPY.header(for: $0.layout), dataLength: $0.layout.byteCount)
        })
        var headers: HTTPFields = [.contentType: TensorEncoding.npz.mediaType]
        if let etag { headers[.eTag] = etag }
        let sources = members.flatMap(\.sources)
        guard let arrays = try await prepare(sources, length: layout.totalLength, limit: limit, isHead: isHead) else {
            return Response(status: .ok, headers: headers, body: emptyBody(layout.totalLength))
        }
        // The prepared arrays, regrouped by member.
        var grouped: [[PreparedArray]] = []
        var position = 0
        for member in members {
            grouped.append(Array(arrays[position..<(position + member.sources.count)]))
            position += member.sources.count
        }
        let groups = grouped
        return Response(status: .ok, headers: headers, body: ResponseBody(contentLength: layout.totalLength) { writer in
            var crcs: [UInt32] = []
            for (index, group) in groups.enumerated() {
                try await writer.write(ByteBuffer(bytes: layout.memberPrefix(index)))
                var crc: CRC32? = CRC32()
                crc!.update(layout.members[index].npyHeader)
                do {
                    try await write(group, to: &writer, crc: &crc)
                } catch {
                    await PreparedArray.close(groups[(index + 1)...].flatMap { $0.compactMap(\.source) })
                    throw error
                }
                crcs.append(crc!.value)
                try await writer.write(ByteBuffer(bytes: layout.memberSuffix(index, crc: crc!.value)))
            }
            try await writer.write(ByteBuffer(bytes: layout.trailer(crcs: crcs)))
            try await writer.finish(nil)
        })
    }

    /// 304 for a matching `If-None-Match`.
    static func notModified(_ request: Request, etag: String) -> Response? {
        guard let header = request.headers[.ifNoneMatch] else { return nil }
        let matches = header.split(separator: ",").contains { tag in
            let trimmed = tag.trimmingSpaces
            return trimmed == "*" || trimmed == etag || trimmed == "W/" + etag
        }
        return matches ? Response(status: .notModified, headers: [.eTag: etag]) : nil
    }

    /// Refuses responses over the limit, closes everything for HEAD (returning nil), and
    /// otherwise reads what fits the prefetch budget.
    private static func prepare(_ sources: [any TensorSource], length: Int, limit: ByteSize, isHead: Bool) async throws -> [PreparedArray]? {
        if length > limit.bytes {
            await PreparedArray.close(sources)
            throw APIError(.tooLarge, "the response would be \(length) bytes, over max_response_bytes (\(limit)); ask for a region or fewer items")
        }
        if isHead {
            await PreparedArray.close(sources)
            return nil
        }
        return try await BlockingPool.run { try PreparedArray.prepare(sources) }
    }

    private static func write(_ arrays: [PreparedArray], to writer: inout any ResponseBodyWriter, crc: inout CRC32?) async throws {
        for (position, array) in arrays.enumerated() {
            if let bytes = array.bytes {
                crc?.update(bytes)
                try await writer.write(ByteBuffer(bytes: bytes))
                continue
            }
            guard let source = array.source else { continue }
            do {
                for chunk in 0..<source.chunkCount {
                    let bytes = try await BlockingPool.run { try source.readChunk(chunk) }
                    crc?.update(bytes)
                    try await writer.write(ByteBuffer(bytes: bytes))
                }
                await PreparedArray.close([source])
            } catch {
                // The client left or a file broke mid-stream: stop reading, release every handle.
                await PreparedArray.close(arrays[position...].compactMap(\.source))
                throw error
            }
        }
    }

    private static func emptyBody(_ length: Int) -> ResponseBody {
        ResponseBody(contentLength: length) { writer in try await writer.finish(nil) }
    }
}

extension HTTPField.Name {
    static let tensorDtype = HTTPField.Name("X-Tensor-Dtype")!
    static let tensorShape = HTTPField.Name("X-Tensor-Shape")!
}
