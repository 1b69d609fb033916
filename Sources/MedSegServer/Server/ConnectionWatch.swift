import Synchronization

/// Whether a client has gone: closed its side of the connection (Hummingbird allows half-closed
/// connections, so a client's FIN does not close the channel) or the whole connection. A request
/// waiting for memory gives up its place then, instead of being built for nobody.
final class ConnectionWatch: Sendable {
    private struct State {
        var gone = false
        var nextToken = 0
        var callbacks: [Int: @Sendable () -> Void] = [:]
    }

    private let state = Mutex(State())

    /// Calls `callback` once when the client goes (at once when it has gone already); the token
    /// cancels it (a callback left registered would live as long as a keep-alive connection).
    func onGone(_ callback: @escaping @Sendable () -> Void) -> Int? {
        let token = state.withLock { state -> Int? in
            guard !state.gone else { return nil }
            state.nextToken += 1
            state.callbacks[state.nextToken] = callback
            return state.nextToken
        }
        if token == nil { callback() }
        return token
    }

    /// A watch of a connection that has gone already (its handlers were removed).
    static var gone: ConnectionWatch {
        let watch = ConnectionWatch()
        watch.markGone()
        return watch
    }

    var isGone: Bool { state.withLock { $0.gone } }

    func cancel(_ token: Int) {
        state.withLock { _ = $0.callbacks.removeValue(forKey: token) }
    }

    /// The client went: every callback runs, once.
    func markGone() {
        let callbacks = state.withLock { state in
            state.gone = true
            defer { state.callbacks = [:] }
            return Array(state.callbacks.values)
        }
        for callback in callbacks { callback() }
    }
}
