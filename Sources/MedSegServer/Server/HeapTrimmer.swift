import CMalloc
public import Logging
public import ServiceLifecycle

/// Gives the heap's free pages back to the system every `server.heap_trim_interval`.
///
/// Tensor bodies of many sizes, allocated and freed by several threads, leave free holes inside
/// glibc's heaps that its top-of-heap trimming never returns, so a long-running server's RSS
/// creeps up while the memory it uses does not (docs: the hour-long soak). `malloc_trim(0)`
/// releases every whole free page (madvise), so RSS follows the memory in use.
public struct HeapTrimmer: Service {
    let interval: Duration
    let logger: Logger

    public init(interval: Duration, logger: Logger) {
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        guard interval > .zero else { return }
        while !Task.isCancelled, !Task.isShuttingDownGracefully {
            // The sleep ends at once on SIGTERM: shutdown never waits for the next trim.
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            } catch {
                return
            }
            let before = ProcessMemory.now().residentBytes
            // On the blocking pool: async code runs on the event loops, and a trim takes the
            // arenas' locks and madvises every free page.
            _ = try? await BlockingPool.run { malloc_trim(0) }
            let after = ProcessMemory.now().residentBytes
            if before - after > 16 << 20 {
                logger.debug("heap trimmed", metadata: ["released_mib": "\((before - after) >> 20)"])
            }
        }
    }
}
