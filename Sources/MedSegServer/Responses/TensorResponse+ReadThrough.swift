import Hummingbird
import MedSegData

extension TensorResponse {
    /// Reads every chunk of `plan`'s label maps once and drops the bytes, before the head: an
    /// overlap (two classes at a pixel) becomes a 422 naming it instead of a body cut after a 200.
    /// One pool job per chunk (other requests take turns on the pool), each chunk held against
    /// `max_inflight_bytes` while read, and the reading stops when the client goes. On any error
    /// every source of the plan is closed.
    static func readThrough(_ plan: TensorPlan, memory: ResponseMemory, context: some RequestContext) async throws {
        guard case .streaming(_, _, let parts, let checkFirst) = plan, !checkFirst.isEmpty else { return }
        do {
            let watch = await context.connectionWatch
            for source in checkFirst {
                for chunk in 0..<source.chunkCount {
                    if watch?.isGone == true { throw CancellationError() }
                    let reservation = try await memory.reserve(source.chunkByteCount(chunk), for: context)
                    try await BlockingPool.run { _ = try source.readChunk(chunk) }
                    withExtendedLifetime(reservation) {}
                }
            }
        } catch {
            await close(parts.compactMap(\.source))
            throw error
        }
    }
}
