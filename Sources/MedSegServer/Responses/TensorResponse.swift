import HTTPTypes
import Hummingbird
import HummingbirdCore
import MedSegData
import NIOCore
import NIOPosix
import Synchronization

/// Turns a `TensorPlan` into a response. Streamed bodies read each chunk on the blocking pool
/// only when the client has taken the previous one, so a slow client never makes the server
/// buffer a volume, and a client that leaves stops the reading.
enum TensorResponse {
    /// The response for a plan; a body built for this request keeps its memory `reservation`
    /// until it has been sent (or dropped).
    static func make(_ plan: TensorPlan, memory: ResponseMemory, holding reservation: ResponseMemory.Reservation? = nil) -> Response {
        switch plan {
        case .notModified(let etag):
            return Response(status: .notModified, headers: [.eTag: etag, .vary: "Accept"])
        case .complete(let headers, let body):
            guard let reservation else { return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: body)) }
            return Response(
                status: .ok, headers: headers,
                body: ResponseBody(contentLength: body.readableBytes) { writer in
                    try await writer.write(body)
                    // Queued on the connection now, where WriteProgressHandler counts it until sent.
                    withExtendedLifetime(reservation) {}
                    try await writer.finish(nil)
                })
        case .unbuilt(let pending):
            // Not reached: ArrayRoutes builds pending bodies before making the response.
            return Response(status: .ok, headers: pending.headers, body: ResponseBody(contentLength: 0) { writer in try await writer.finish(nil) })
        case .headersOnly(let headers, let length):
            return Response(status: .ok, headers: headers, body: ResponseBody(contentLength: length) { writer in try await writer.finish(nil) })
        case .streaming(let headers, let length, let parts):
            let guardian = SourceGuardian(
                parts.compactMap { part in
                    if case .array(let source) = part { return source }
                    return nil
                })
            return Response(
                status: .ok, headers: headers,
                body: ResponseBody(contentLength: length) { writer in
                    try await stream(parts, memory: memory, to: &writer)
                    guardian.closed()
                    try await writer.finish(nil)
                })
        }
    }

    private static func stream(_ parts: [StreamPart], memory: ResponseMemory, to writer: inout any ResponseBodyWriter) async throws {
        // Every chunk to read, in body order. While one chunk goes to the client the next is read
        // on the blocking pool, so reading (HDF5, inflate, collation) and sending overlap.
        let reads = parts.flatMap { part -> [(source: any TensorSource, chunk: Int)] in
            guard case .array(let source) = part else { return [] }
            return (0..<source.chunkCount).map { (source, $0) }
        }
        var nextRead = 0
        func startRead() -> Task<(ByteBuffer, ResponseMemory.Reservation), any Error>? {
            guard nextRead < reads.count else { return nil }
            let (source, chunk) = reads[nextRead]
            nextRead += 1
            return Task {
                // Each chunk holds its bytes against max_inflight_bytes until it has been written.
                let reservation = await memory.reserve(source.chunkByteCount(chunk))
                let buffer = try await BlockingPool.run {
                    var buffer = ByteBufferAllocator().buffer(capacity: source.chunkByteCount(chunk))
                    try buffer.writeChunk(chunk, of: source)
                    return buffer
                }
                return (buffer, reservation)
            }
        }
        var pending = startRead()
        var assembler = BodyAssembler()
        var position = 0
        do {
            for part in parts {
                defer { position += 1 }
                guard case .array(let source) = part else {
                    for piece in assembler.bytes(for: part) where !piece.isEmpty {
                        try await writer.write(ByteBuffer(bytes: piece))
                    }
                    continue
                }
                for _ in 0..<source.chunkCount {
                    guard let read = pending else { break }
                    let (buffer, reservation) = try await read.value
                    pending = startRead()
                    buffer.withUnsafeReadableBytes { assembler.add($0) }
                    try await writer.write(buffer)
                    withExtendedLifetime(reservation) {}
                }
                // All of this source's reads have completed (the one in flight is the next source's).
                await close([source])
            }
        } catch {
            // The client left or a file broke mid-stream: let the read in flight finish (it uses
            // the handles), then release every handle still open.
            _ = try? await pending?.value
            await close(
                parts[position...].compactMap { part in
                    if case .array(let source) = part { return source }
                    return nil
                })
            throw error
        }
    }

    /// Closes sources on the blocking pool (HDF5 calls never run on an event loop).
    static func close(_ sources: [any TensorSource]) async {
        guard !sources.isEmpty else { return }
        _ = try? await BlockingPool.run { for source in sources { source.close() } }
    }
}

/// Makes sure a streamed body's sources are released on the blocking pool even when the body is
/// never written (the client left before the response started): HDF5 handles must not be closed
/// on an event loop.
final class SourceGuardian: Sendable {
    private let sources: Mutex<[any TensorSource]>

    init(_ sources: [any TensorSource]) {
        self.sources = Mutex(sources)
    }

    /// The stream closed every source itself.
    func closed() {
        sources.withLock { $0 = [] }
    }

    /// Closes every source now (on a blocking thread already).
    func closeNow() {
        let remaining = sources.withLock { sources in
            defer { sources = [] }
            return sources
        }
        for source in remaining { source.close() }
    }

    deinit {
        let remaining = sources.withLock { sources in
            defer { sources = [] }
            return sources
        }
        guard !remaining.isEmpty else { return }
        // The job holds the last references: the sources go (and their handles close) on the pool.
        NIOThreadPool.singleton.submit { _ in
            for source in remaining { source.close() }
        }
    }
}
