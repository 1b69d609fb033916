internal import Yams

/// One key of the `server:` section, declared once: its name, how its value is read and checked,
/// a line of documentation, and when a SIGHUP reload applies it. Parsing, the reload (what it
/// applies at once, what it names as needing a restart) and the key table of docs/CONFIG.md (a
/// test compares them) all follow from `ServerSettings.keys`; defaults are `ServerSettings`' own.
public struct ServerKey: Sendable {
    public enum Reload: String, Sendable {
        /// Requests read it when they run: a reload applies it.
        case atOnce = "at once"
        /// Read once at start (a socket, a pool, the cache): a reload only says it changed.
        case atRestart = "at restart"
    }

    public let name: String
    public let summary: String
    public let reload: Reload
    let read: @Sendable (inout ConfigReader, Node, _ file: String, _ directory: String, inout ServerSettings) -> Void
    /// Whether two settings differ in this key.
    public let differs: @Sendable (ServerSettings, ServerSettings) -> Bool
    /// Copies this key's value from the first settings into the second.
    public let copy: @Sendable (ServerSettings, inout ServerSettings) -> Void

    /// A key stored at `path`; `read` returns nil when it recorded an error.
    static func key<Value: Equatable & Sendable>(
        _ name: String, _ path: any WritableKeyPath<ServerSettings, Value> & Sendable, _ reload: Reload, _ summary: String,
        read: @escaping @Sendable (inout ConfigReader, Node, _ what: String, _ file: String, _ directory: String) -> Value?
    ) -> ServerKey {
        ServerKey(
            name: name, summary: summary, reload: reload,
            read: { reader, node, file, directory, settings in
                if let value = read(&reader, node, "server." + name, file, directory) { settings[keyPath: path] = value }
            },
            differs: { $0[keyPath: path] != $1[keyPath: path] },
            copy: { source, target in target[keyPath: path] = source[keyPath: path] })
    }
}

extension ServerSettings {
    /// Every `server:` key, in the order docs/CONFIG.md lists them.
    public static let keys: [ServerKey] = [
        .key("host", \.host, .atRestart, "address to listen on") { reader, node, what, file, _ in reader.string(node, what, file) },
        .key("port", \.port, .atRestart, "port to listen on; 0 picks a free one and logs it") { reader, node, what, file, _ in
            reader.integer(node, what, file, range: 0...65535)
        },
        .key("cache_bytes", \.cacheBytes, .atRestart, "in-memory tensor response cache budget (0 disables it)") { reader, node, what, file, _ in
            reader.byteSize(node, what, file)
        },
        .key("max_batch_items", \.maxBatchItems, .atOnce, "larger batch requests get 413") { reader, node, what, file, _ in
            reader.integer(node, what, file, range: 1...1_000_000)
        },
        .key("max_response_bytes", \.maxResponseBytes, .atOnce, "larger tensor responses get 413") { reader, node, what, file, _ in
            reader.byteSize(node, what, file, minimum: 1, "more than 0")
        },
        .key("tokens_file", \.tokensFile, .atOnce, "file of bearer tokens, one a line; when set, every route but the probes needs one") {
            reader, node, what, file, directory in
            reader.isNull(node) ? .some(nil) : reader.string(node, what, file).map { .some(Paths.resolve($0, against: directory)) }
        },
        .key("tls", \.tls, .atRestart, "{certificate, private_key}: both set serves HTTPS (TLS 1.2 or later)") { reader, node, _, file, directory in
            reader.readTLS(node, file: file, directory: directory)
        },
        .key("shutdown_grace", \.shutdownGrace, .atRestart, "SIGTERM/SIGINT: in-flight responses get this long to finish") {
            reader, node, what, file, _ in reader.duration(node, what, file)
        },
        .key("idle_timeout", \.idleTimeout, .atRestart, "idle connections, and responses the client stops reading, are closed after this (0: never)")
        {
            reader, node, what, file, _ in reader.duration(node, what, file)
        },
        .key("max_connections", \.maxConnections, .atRestart, "connections beyond this many wait to be accepted") { reader, node, what, file, _ in
            reader.integer(node, what, file, range: 1...1_000_000)
        },
        .key("max_header_bytes", \.maxHeaderBytes, .atRestart, "request line and headers; larger requests get a bare 400") {
            reader, node, what, file, _ in reader.byteSize(node, what, file, minimum: 1024, "at least 1KiB")
        },
        .key("max_body_bytes", \.maxBodyBytes, .atOnce, "batch request bodies; larger ones get 413") { reader, node, what, file, _ in
            reader.byteSize(node, what, file, minimum: 1024, "at least 1KiB")
        },
        .key("access_log", \.accessLog, .atOnce, "one info-level line per request, logged once its body has been written out") {
            reader, node, what, file, _ in
            reader.bool(node, what, file)
        },
        .key("max_inflight_bytes", \.maxInflightBytes, .atRestart, "response bytes held in memory at once; requests past it wait") {
            reader, node, what, file, _ in reader.byteSize(node, what, file, minimum: 1 << 20, "at least 1MiB")
        },
        .key(
            "state_dir", \.stateDirectory, .atRestart,
            "where fingerprints persist (default: systemd's StateDirectory=, else state/ beside the config)"
        ) {
            reader, node, what, file, directory in
            reader.isNull(node) ? .some(nil) : reader.string(node, what, file).map { .some(Paths.resolve($0, against: directory)) }
        },
        .key("heap_trim_interval", \.heapTrimInterval, .atRestart, "free heap pages go back to the system this often (0: never)") {
            reader, node, what, file, _ in reader.duration(node, what, file)
        },
    ]

    /// The keys whose change a reload cannot apply, by name.
    public func keysNeedingRestart(toBecome other: ServerSettings) -> [String] {
        Self.keys.filter { $0.reload == .atRestart && $0.differs(self, other) }.map(\.name)
    }

    /// These settings with every key a reload applies taken from `other`.
    public func applyingReloadableKeys(from other: ServerSettings) -> ServerSettings {
        var settings = self
        for key in Self.keys where key.reload == .atOnce { key.copy(other, &settings) }
        return settings
    }
}
