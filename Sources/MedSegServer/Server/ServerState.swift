/// The shared, swappable state of one server process: what requests read and reloads replace.
public struct ServerState: Sendable {
    public let store: CatalogStore
    public let tokens: TokenStore
    public let cache: ResponseCache
    public let metrics: ServerMetrics

    public init(store: CatalogStore = CatalogStore(), tokens: TokenStore = TokenStore(), cache: ResponseCache, metrics: ServerMetrics = ServerMetrics()) {
        self.store = store
        self.tokens = tokens
        self.cache = cache
        self.metrics = metrics
    }
}
