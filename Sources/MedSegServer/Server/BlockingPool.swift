import NIOPosix

/// Where HDF5 and file work runs: NIO's blocking thread pool (one thread per core), never an
/// event loop. HDF5 holds one global lock, so more threads would only queue behind it.
enum BlockingPool {
    static func run<T: Sendable>(_ work: @Sendable @escaping () throws -> T) async throws -> T {
        try await NIOThreadPool.singleton.runIfActive(work)
    }
}
