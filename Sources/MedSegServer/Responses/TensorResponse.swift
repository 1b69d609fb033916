import HTTPTypes
import Hummingbird
import HummingbirdCore
import MedSegData
import NIOCore

/// Turns a `TensorPlan` into a response. Streamed bodies read each chunk on the blocking pool
/// only when the client has taken the previous one, so a slow client never makes the server
/// buffer a volume, and a client that leaves stops the reading.
enum TensorResponse {
    static func make(_ plan: TensorPlan) -> Response {
        switch plan {
        case .notModified(let etag):
            return Response(status: .notModified, headers: [.eTag: etag])
        case .complete(let headers, let body):
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: body))
        case .headersOnly(let headers, let length):
            return Response(status: .ok, headers: headers, body: ResponseBody(contentLength: length) { writer in try await writer.finish(nil) })
        case .streaming(let headers, let length, let parts):
            return Response(status: .ok, headers: headers, body: ResponseBody(contentLength: length) { writer in
                try await stream(parts, to: &writer)
                try await writer.finish(nil)
            })
        }
    }

    private static func stream(_ parts: [StreamPart], to writer: inout any ResponseBodyWriter) async throws {
        var assembler = BodyAssembler()
        for (position, part) in parts.enumerated() {
            do {
                guard case .array(let source) = part else {
                    for piece in assembler.bytes(for: part) where !piece.isEmpty {
                        try await writer.write(ByteBuffer(bytes: piece))
                    }
                    continue
                }
                for chunk in 0..<source.chunkCount {
                    // Read into a fresh buffer on the pool; the CRC state travels with it.
                    let state = assembler
                    let (buffer, updated) = try await BlockingPool.run {
                        var crc = state
                        var buffer = ByteBufferAllocator().buffer(capacity: source.chunkByteCount(chunk))
                        try buffer.writeChunk(chunk, of: source, crc: &crc)
                        return (buffer, crc)
                    }
                    assembler = updated
                    try await writer.write(buffer)
                }
                await close([source])
            } catch {
                // The client left or a file broke mid-stream: release every handle still open.
                await close(parts[position...].compactMap { part in
                    if case .array(let source) = part { return source }
                    return nil
                })
                throw error
            }
        }
    }

    /// Closes sources on the blocking pool (HDF5 calls never run on an event loop).
    static func close(_ sources: [any TensorSource]) async {
        guard !sources.isEmpty else { return }
        _ = try? await BlockingPool.run { for source in sources { source.close() } }
    }
}
