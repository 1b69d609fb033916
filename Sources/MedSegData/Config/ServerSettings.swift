/// CONFIG.md's `server:` section.
public struct ServerSettings: Sendable, Equatable {
    public var host = "127.0.0.1"
    /// 0 picks a free port (logged at startup).
    public var port = 8080
    /// In-memory tensor cache budget; 0 disables the cache.
    public var cacheBytes = ByteSize(bytes: 512 << 20)
    /// Batch requests with more items get 413.
    public var maxBatchItems = 512
    /// Tensor responses larger than this get 413.
    public var maxResponseBytes = ByteSize(bytes: 4 << 30)
    /// File of bearer tokens, one a line; when set, `/v1` needs one.
    public var tokensFile: String?
    /// Serve HTTPS when set.
    public var tls: TLSSettings?
    /// How long SIGTERM waits for in-flight responses before cutting them.
    public var shutdownGrace: Duration = .seconds(30)
    /// Connections idle (nothing read or written) this long are closed: stalled clients go.
    public var idleTimeout: Duration = .seconds(60)
    /// Connections beyond this many wait to be accepted.
    public var maxConnections = 1024
    /// The largest request head (request line and headers) accepted.
    public var maxHeaderBytes = ByteSize(bytes: 32 << 10)
    /// The largest request body accepted (batch requests).
    public var maxBodyBytes = ByteSize(bytes: 1 << 20)
    /// One info-level log line per request.
    public var accessLog = true
    /// Response bytes held in memory at once (built bodies not yet sent, streamed chunks).
    public var maxInflightBytes = ByteSize(bytes: 1 << 30)
    /// How often free heap pages go back to the system (`malloc_trim`); 0 never.
    public var heapTrimInterval: Duration = .seconds(10)
    /// Where fingerprints persist; nil: systemd's `$STATE_DIRECTORY`, else `state/` beside the config.
    public var stateDirectory: String?

    public init() {}

    /// `state_dir` as set, else systemd's `StateDirectory=` (`$STATE_DIRECTORY`), else `state/`
    /// in the main config file's folder.
    public func resolvedStateDirectory(configPath: String, environment: [String: String]) -> String {
        if let stateDirectory { return stateDirectory }
        if let systemd = environment["STATE_DIRECTORY"]?.split(separator: ":").first, !systemd.isEmpty { return String(systemd) }
        return Paths.directory(of: Paths.resolve(configPath, against: Paths.currentDirectory)) + "/state"
    }
}

/// A certificate chain and its private key, both PEM files.
public struct TLSSettings: Sendable, Equatable {
    public var certificate: String
    public var privateKey: String

    public init(certificate: String, privateKey: String) {
        self.certificate = certificate
        self.privateKey = privateKey
    }
}
