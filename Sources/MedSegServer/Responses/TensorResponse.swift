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
        case .streaming(let headers, let length, let parts, _):
            let guardian = SourceGuardian(parts.compactMap(\.source))
            return Response(
                status: .ok, headers: headers,
                body: ResponseBody(contentLength: length) { writer in
                    try await stream(parts, memory: memory, to: &writer)
                    guardian.closed()
                    try await writer.finish(nil)
                })
        }
    }

    /// One piece of a streamed body, produced on the blocking pool in body order: an npz's
    /// writer keeps CRCs, deflate state and offsets across them.
    private enum Step {
        case part(StreamPart)
        case chunk(any TensorSource, Int, NPZWriter?, last: Bool)

        var byteEstimate: Int {
            if case .chunk(let source, let index, _, _) = self { return source.chunkByteCount(index) }
            return 0
        }

        func produce() throws -> ByteBuffer {
            switch self {
            case .part(let part):
                return ByteBuffer(bytes: part.bytes)
            case .chunk(let source, let index, let writer, _):
                var buffer = ByteBufferAllocator().buffer(capacity: source.chunkByteCount(index))
                try buffer.writeChunk(index, of: source, through: writer)
                return buffer
            }
        }
    }

    private static func stream(_ parts: [StreamPart], memory: ResponseMemory, to writer: inout any ResponseBodyWriter) async throws {
        let steps = parts.flatMap { part -> [Step] in
            guard case .array(let source, let npz) = part else { return [.part(part)] }
            return (0..<source.chunkCount).map { .chunk(source, $0, npz, last: $0 == source.chunkCount - 1) }
        }
        // While one step's bytes go to the client the next is produced on the blocking pool, so
        // reading (HDF5, inflate, collation, deflate) and sending overlap; steps run one at a time.
        var next = 0
        func startStep() -> Task<(ByteBuffer, ResponseMemory.Reservation), any Error>? {
            guard next < steps.count else { return nil }
            let step = steps[next]
            next += 1
            return Task {
                // Each chunk holds its bytes against max_inflight_bytes until it has been written.
                let reservation = try await memory.reserve(step.byteEstimate)
                let buffer = try await BlockingPool.run { try step.produce() }
                return (buffer, reservation)
            }
        }
        var pending = startStep()
        var done = 0
        do {
            while let current = pending {
                let (buffer, reservation) = try await current.value
                let step = steps[done]
                done += 1
                pending = startStep()
                // A source's last chunk was read (the step in flight is a later one's).
                if case .chunk(let source, _, _, last: true) = step { await close([source]) }
                if buffer.readableBytes > 0 { try await writer.write(buffer) }
                withExtendedLifetime(reservation) {}
            }
        } catch {
            // The client left or a file broke mid-stream: let the step in flight finish (it uses
            // the handles), then release every handle still open.
            _ = try? await pending?.value
            var open: [any TensorSource] = []
            for case .chunk(let source, _, _, last: true) in steps[done...] { open.append(source) }
            await close(open)
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
