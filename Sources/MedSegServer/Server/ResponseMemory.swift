import Synchronization

/// The response bytes held in memory at once, across all requests (`server.max_inflight_bytes`):
/// bodies being built, and bytes queued on connections that have not left the process yet
/// (counted by `WriteProgressHandler`, since a write returns as soon as its bytes are queued).
/// A request that would go past it waits for bytes to be released, so clients that read slowly
/// or not at all (until `idle_timeout` cuts them) cannot make the process grow without bound.
public final class ResponseMemory: Sendable {
    /// Bytes held by one body or chunk, given back when the last reference to it goes: whether
    /// the bytes were sent, the client left, or the response was never started.
    final class Reservation: Sendable {
        let bytes: Int
        let memory: ResponseMemory

        init(_ bytes: Int, _ memory: ResponseMemory) {
            self.bytes = bytes
            self.memory = memory
        }

        deinit { memory.release(bytes) }
    }

    private struct Waiter {
        let id: UInt64
        let bytes: Int
        let continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var available: Int
        /// First come, first served: a large request is not overtaken forever by small ones.
        var waiting: [Waiter] = []
        var nextID: UInt64 = 0
    }

    public let budget: Int
    private let state: Mutex<State>

    public init(budget: Int) {
        self.budget = max(1, budget)
        self.state = Mutex(State(available: max(1, budget)))
    }

    /// Waits until `bytes` (at most the whole budget) are free, first come first served. The
    /// wait ends with `CancellationError` when the task is cancelled or the client goes
    /// (`watch`): a client that left holds no place in the queue.
    func reserve(_ bytes: Int, watching watch: ConnectionWatch? = nil) async throws -> Reservation {
        let bytes = min(max(bytes, 0), budget)
        let id = state.withLock { state in
            state.nextID += 1
            return state.nextID
        }
        let registration = Registration()
        defer { if let token = registration.token.withLock({ $0 }) { watch?.cancel(token) } }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                enum Outcome { case granted, queued, abandoned }
                let outcome = state.withLock { state -> Outcome in
                    if Task.isCancelled { return .abandoned }
                    guard state.waiting.isEmpty, state.available >= bytes else {
                        state.waiting.append(Waiter(id: id, bytes: bytes, continuation: continuation))
                        return .queued
                    }
                    state.available -= bytes
                    return .granted
                }
                switch outcome {
                case .granted: continuation.resume()
                case .abandoned: continuation.resume(throwing: CancellationError())
                case .queued:
                    // Runs at once when the client has gone already.
                    let token = watch?.onGone { [self] in abandon(id) }
                    registration.token.withLock { $0 = token }
                }
            }
        } onCancel: {
            abandon(id)
        }
        return Reservation(bytes, self)
    }

    /// The wait's callback on the client's connection, cancelled once the wait ends.
    private final class Registration: Sendable {
        let token = Mutex<Int?>(nil)
    }

    /// Takes waiter `id` out of the queue (if it still waits) and lets those behind it go.
    private func abandon(_ id: UInt64) {
        let (abandoned, resumed) = state.withLock { state -> (CheckedContinuation<Void, any Error>?, [CheckedContinuation<Void, any Error>]) in
            guard let index = state.waiting.firstIndex(where: { $0.id == id }) else { return (nil, []) }
            let waiter = state.waiting.remove(at: index)
            return (waiter.continuation, Self.grantWaiting(&state))
        }
        abandoned?.resume(throwing: CancellationError())
        for continuation in resumed { continuation.resume() }
    }

    /// Grants waiters from the front of the queue while their bytes are free.
    private static func grantWaiting(_ state: inout State) -> [CheckedContinuation<Void, any Error>] {
        var resumed: [CheckedContinuation<Void, any Error>] = []
        while let first = state.waiting.first, first.bytes <= state.available {
            state.available -= first.bytes
            resumed.append(first.continuation)
            state.waiting.removeFirst()
        }
        return resumed
    }

    /// `bytes` now if they are free and nobody waits for room, without waiting (blocking threads).
    func tryReserve(_ bytes: Int) -> Reservation? {
        let bytes = min(max(bytes, 0), budget)
        let granted = state.withLock { state in
            guard state.waiting.isEmpty, state.available >= bytes else { return false }
            state.available -= bytes
            return true
        }
        return granted ? Reservation(bytes, self) : nil
    }

    /// Bytes written to a connection and not yet sent (they may take the budget below zero:
    /// they are already in memory).
    func queued(_ bytes: Int) {
        state.withLock { $0.available -= bytes }
    }

    /// Bytes that left, or were dropped with their connection.
    func sent(_ bytes: Int) {
        release(bytes)
    }

    private func release(_ bytes: Int) {
        let resumed = state.withLock { state in
            state.available += bytes
            return Self.grantWaiting(&state)
        }
        for continuation in resumed { continuation.resume() }
    }

    /// Bytes held now (for tests and metrics).
    public var held: Int { state.withLock { budget - $0.available } }
}
