public import Logging
import MedSegData
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

    /// One reload; true when the new configuration is in place. Tokens come first and on their
    /// own: a revoked token stops working before the catalog is rebuilt, and even when the rest
    /// of the configuration is refused (the running `tokens_file` is read again then).
    @discardableResult
    public func reload() async -> Bool {
        notifier.reloading()
        defer { notifier.ready(status: "serving \(state.store.catalog?.names.count ?? 0) datasets") }
        logger.info("reloading", metadata: ["config": "\(configPath)"])
        let path = configPath
        let overrides = overrides
        let logger = logger
        let ticket = state.store.beginLoad()
        let parsed: Result<Configuration, any Error> = await Result {
            try await BlockingPool.run {
                var configuration = try ConfigLoader.load(path: path)
                overrides.apply(to: &configuration)
                return configuration
            }
        }
        let tokensFile = (try? parsed.get())?.server.tokensFile ?? (parsed.isSuccess ? nil : state.settings.current.tokensFile)
        let tokensApplied = await reloadTokens(tokensFile, configRefused: !parsed.isSuccess)
        do {
            let configuration = try parsed.get()
            let catalog = try await BlockingPool.run { CatalogLoader.load(configuration, logger: logger) }
            let running = state.settings.current
            guard state.store.install(catalog, loadedBy: ticket) else {
                logger.info("reload superseded by a newer one")
                return false
            }
            state.fingerprints.start(catalog)
            let restartOnly = running.keysNeedingRestart(toBecome: configuration.server)
            if !restartOnly.isEmpty {
                logger.warning(
                    "some server settings changed that take effect at the next restart",
                    metadata: ["settings": "\(restartOnly.joined(separator: ", "))"])
            }
            var settings = running.applyingReloadableKeys(from: configuration.server)
            // Refused tokens keep the file they were read from: the next reload reads it again.
            if !tokensApplied { settings.tokensFile = running.tokensFile }
            state.settings.replace(with: settings)
            state.metrics.reloaded(ok: tokensApplied)
            logger.info(
                "reloaded",
                metadata: ["datasets": "\(catalog.names.count)", "items": "\(catalog.itemCount)", "problems": "\(catalog.problems.count)"])
            return tokensApplied
        } catch let error as ConfigErrors {
            state.metrics.reloaded(ok: false)
            logger.error(
                "reload refused: invalid configuration; the previous catalog keeps serving",
                metadata: ["errors": "\(error.errors.map(\.description).joined(separator: "; "))"])
        } catch {
            state.metrics.reloaded(ok: false)
            logger.error("reload refused; the previous catalog keeps serving", metadata: ["error": "\(error)"])
        }
        return false
    }

    /// Reads `path` (nil: no tokens required) and puts its tokens in force at once; true when
    /// they are. An unreadable or empty file keeps the tokens in force.
    private func reloadTokens(_ path: String?, configRefused: Bool) async -> Bool {
        // A refused configuration without a running tokens file: nothing to re-read.
        if configRefused, path == nil { return false }
        do {
            let tokens = try await BlockingPool.run { try path.map { path throws(TokenStore.LoadError) in try TokenStore.read(path) } }
            state.tokens.replace(with: tokens)
            logger.info("tokens reloaded", metadata: ["tokens": "\(tokens?.count ?? 0)"])
            return true
        } catch {
            logger.error("tokens refused; the tokens in force stay", metadata: ["error": "\(error)"])
            return false
        }
    }
}

extension Result {
    var isSuccess: Bool {
        if case .success = self { return true }
        return false
    }

    init(catching body: () async throws(Failure) -> Success) async {
        do {
            self = .success(try await body())
        } catch {
            self = .failure(error)
        }
    }
}
