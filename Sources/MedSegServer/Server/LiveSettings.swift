public import MedSegData
import Synchronization

/// The server settings requests read when they run, so that a reload applies the keys declared
/// `.atOnce` in `ServerSettings.keys` immediately. The others are read once at start; `Reloader`
/// names them when a reload changes them.
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
