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

    private struct State {
        var available: Int
        var waiting: [(bytes: Int, continuation: CheckedContinuation<Void, Never>)] = []
    }

    public let budget: Int
    private let state: Mutex<State>

    public init(budget: Int) {
        self.budget = max(1, budget)
        self.state = Mutex(State(available: max(1, budget)))
    }

    /// Waits until `bytes` (at most the whole budget) are free, first come first served.
    func reserve(_ bytes: Int) async -> Reservation {
        let bytes = min(max(bytes, 0), budget)
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let granted = state.withLock { state in
                guard state.waiting.isEmpty, state.available >= bytes else {
                    state.waiting.append((bytes, continuation))
                    return false
                }
                state.available -= bytes
                return true
            }
            if granted { continuation.resume() }
        }
        return Reservation(bytes, self)
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
            var resumed: [CheckedContinuation<Void, Never>] = []
            while let first = state.waiting.first, first.bytes <= state.available {
                state.available -= first.bytes
                resumed.append(first.continuation)
                state.waiting.removeFirst()
            }
            return resumed
        }
        for continuation in resumed { continuation.resume() }
    }

    /// Bytes held now (for tests and metrics).
    public var held: Int { state.withLock { budget - $0.available } }
}
