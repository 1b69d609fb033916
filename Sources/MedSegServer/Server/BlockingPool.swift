import Metrics
import NIOPosix

/// Where HDF5 and file work runs: NIO's blocking thread pool (one thread per core), never an
/// event loop. HDF5 holds one global lock, so more threads would only queue behind it.
enum BlockingPool {
    static func run<T: Sendable>(_ work: @Sendable @escaping () throws -> T) async throws -> T {
        try await NIOThreadPool.singleton.runIfActive(work)
    }

    /// `run`, timing the job (the HDF5 and file work of a request) as `medsegd_read_duration`.
    static func timed<T: Sendable>(_ route: String, _ work: @Sendable @escaping () throws -> T) async throws -> T {
        try await NIOThreadPool.singleton.runIfActive {
            let started = ContinuousClock.now
            defer { Timer(label: "medsegd_read_duration", dimensions: [("route", route)]).recordInterval(since: started) }
            return try work()
        }
    }
}

extension Timer {
    func recordInterval(since start: ContinuousClock.Instant) {
        let elapsed = ContinuousClock.now - start
        recordNanoseconds(elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000)
    }
}
