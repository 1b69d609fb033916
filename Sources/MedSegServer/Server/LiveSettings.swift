public import MedSegData
import Synchronization

/// The server settings requests read when they run, so that a reload applies the ones that need
/// no new socket or pool (`max_batch_items`, `max_response_bytes`, `max_body_bytes`, `access_log`)
/// at once. The others are read once at start; `Reloader` says when they need a restart.
public final class LiveSettings: Sendable {
    private let settings: Mutex<ServerSettings>

    public init(_ settings: ServerSettings) {
        self.settings = Mutex(settings)
    }

    public var current: ServerSettings { settings.withLock { $0 } }

    public func replace(with settings: ServerSettings) {
        self.settings.withLock { $0 = settings }
    }
}
