public import Logging
import MedSegData
import Metrics
public import ServiceLifecycle
import UnixSignals

/// `SIGHUP`: re-reads the whole configuration and swaps the catalog (and tokens) atomically.
/// Requests in flight finish on the snapshot they took; an invalid configuration is refused with
/// a log line and the old catalog keeps serving. Listening settings need a restart.
public struct Reloader: Service {
    let configPath: String
    let overrides: Overrides
    let state: ServerState
    let notifier: SystemdNotifier
    let logger: Logger

    /// Command-line values that win over the file's.
    public struct Overrides: Sendable {
        public var host: String?
        public var port: Int?

        public init(host: String? = nil, port: Int? = nil) {
            self.host = host
            self.port = port
        }

        func apply(to configuration: inout Configuration) {
            if let host { configuration.server.host = host }
            if let port { configuration.server.port = port }
        }
    }

    public init(configPath: String, overrides: Overrides, state: ServerState, notifier: SystemdNotifier, logger: Logger) {
        self.configPath = configPath
        self.overrides = overrides
        self.state = state
        self.notifier = notifier
        self.logger = logger
    }

    public func run() async throws {
        for await _ in await UnixSignalsSequence(trapping: .sighup).cancelOnGracefulShutdown() {
            _ = await reload()
        }
        // The loop ends when the service group shuts down gracefully.
        notifier.stopping()
    }

    /// One reload; true when the new configuration is in place.
    @discardableResult
    public func reload() async -> Bool {
        notifier.reloading()
        defer { notifier.ready(status: "serving \(state.store.catalog?.names.count ?? 0) datasets") }
        logger.info("reloading", metadata: ["config": "\(configPath)"])
        let path = configPath
        let overrides = overrides
        let logger = logger
        let ticket = state.store.beginLoad()
        do {
            let (configuration, catalog, tokens) = try await BlockingPool.run {
                var configuration = try ConfigLoader.load(path: path)
                overrides.apply(to: &configuration)
                let tokens = try configuration.server.tokensFile.map { path throws(TokenStore.LoadError) in try TokenStore.read(path) }
                return (configuration, CatalogLoader.load(configuration, logger: logger), tokens)
            }
            let running = state.settings.current
            guard state.store.install(catalog, loadedBy: ticket) else {
                logger.info("reload superseded by a newer one")
                return false
            }
            state.tokens.replace(with: tokens)
            state.fingerprints.start(catalog)
            let restartOnly = running.keysNeedingRestart(toBecome: configuration.server)
            if !restartOnly.isEmpty {
                logger.warning(
                    "some server settings changed that take effect at the next restart",
                    metadata: ["settings": "\(restartOnly.joined(separator: ", "))"])
            }
            state.settings.replace(with: running.applyingReloadableKeys(from: configuration.server))
            Counter(label: "medsegd_reloads", dimensions: [("result", "ok")]).increment()
            logger.info(
                "reloaded",
                metadata: ["datasets": "\(catalog.names.count)", "items": "\(catalog.itemCount)", "problems": "\(catalog.problems.count)"])
            return true
        } catch let error as ConfigErrors {
            Counter(label: "medsegd_reloads", dimensions: [("result", "failed")]).increment()
            logger.error(
                "reload refused: invalid configuration; the previous catalog keeps serving",
                metadata: ["errors": "\(error.errors.map(\.description).joined(separator: "; "))"])
        } catch {
            Counter(label: "medsegd_reloads", dimensions: [("result", "failed")]).increment()
            logger.error("reload refused; the previous catalog keeps serving", metadata: ["error": "\(error)"])
        }
        return false
    }
}
