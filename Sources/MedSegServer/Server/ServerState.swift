public import Logging
public import MedSegData

/// The shared, swappable state of one server process: what requests read and reloads replace.
public struct ServerState: Sendable {
    public let store: CatalogStore
    public let tokens: TokenStore
    public let cache: ResponseCache
    public let metrics: ServerMetrics
    public let settings: LiveSettings
    public let memory: ResponseMemory
    public let fingerprints: FingerprintService

    public init(
        settings: ServerSettings, store: CatalogStore = CatalogStore(), tokens: TokenStore = TokenStore(), cache: ResponseCache,
        metrics: ServerMetrics = ServerMetrics(), stateDirectory: String? = nil, logger: Logger = Logger(label: "medsegd")
    ) {
        self.fingerprints = FingerprintService(stateDirectory: stateDirectory, logger: logger)
        self.settings = LiveSettings(settings)
        self.memory = ResponseMemory(budget: settings.maxInflightBytes.bytes)
        self.store = store
        self.tokens = tokens
        self.cache = cache
        self.metrics = metrics
    }
}
