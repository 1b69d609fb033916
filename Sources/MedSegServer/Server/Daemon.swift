public import Logging
public import MedSegData
import ServiceLifecycle
import UnixSignals

/// `medsegd serve` as a whole: the HTTP application, the catalog loading behind `/readyz`, the
/// SIGHUP reloader and systemd notifications, run as one service group that shuts down
/// gracefully on SIGTERM and SIGINT (in-flight responses finish, bounded by `shutdown_grace`).
public enum Daemon {
    public static func run(
        configuration: Configuration, configPath: String, overrides: Reloader.Overrides, metrics: ServerMetrics,
        environment: [String: String], logger: Logger
    ) async throws {
        let settings = configuration.server
        let state = ServerState(
            settings: settings, cache: ResponseCache(budget: settings.cacheBytes.bytes), metrics: metrics,
            stateDirectory: settings.resolvedStateDirectory(configPath: configPath, environment: environment), logger: logger)
        if let tokensFile = settings.tokensFile {
            state.tokens.replace(with: try TokenStore.read(tokensFile))
        }
        let notifier = SystemdNotifier(environment: environment, logger: logger)
        let readiness = Readiness(notifier: notifier)
        let app = try MedSegServer.makeApplication(state: state, logger: logger) { port in
            await readiness.listening(port: port)
        }
        // The socket opens at once (/healthz answers) while the catalog loads on the blocking
        // pool; /readyz and /v1 answer 503 until it is in place.
        let ticket = state.store.beginLoad()
        let loading = Task {
            let catalog = try await BlockingPool.run { CatalogLoader.load(configuration, logger: logger) }
            // A SIGHUP during this first load started a newer one: its catalog wins.
            guard state.store.install(catalog, loadedBy: ticket) else {
                logger.info("first catalog load finished after a reload; the reloaded catalog stays")
                return
            }
            logger.info(
                "catalog loaded",
                metadata: [
                    "datasets": "\(catalog.names.count)", "items": "\(catalog.itemCount)", "problems": "\(catalog.problems.count)",
                ])
            state.fingerprints.start(catalog)
            await readiness.catalogLoaded(datasets: catalog.names.count)
        }
        defer { loading.cancel() }
        let reloader = Reloader(configPath: configPath, overrides: overrides, state: state, notifier: notifier, logger: logger)
        var group = ServiceGroupConfiguration(
            services: [
                .init(service: app),
                .init(service: reloader, successTerminationBehavior: .ignore),
                .init(service: HeapTrimmer(interval: settings.heapTrimInterval, logger: logger), successTerminationBehavior: .ignore),
            ],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger)
        group.maximumGracefulShutdownDuration = settings.shutdownGrace
        try await ServiceGroup(configuration: group).run()
        logger.info("stopped")
    }
}

/// Tells systemd READY=1 once both the socket listens and the first catalog is in place.
actor Readiness {
    private let notifier: SystemdNotifier
    private var port: Int?
    private var datasets: Int?

    init(notifier: SystemdNotifier) {
        self.notifier = notifier
    }

    func listening(port: Int) {
        self.port = port
        notifyIfReady()
    }

    func catalogLoaded(datasets: Int) {
        self.datasets = datasets
        notifyIfReady()
    }

    private func notifyIfReady() {
        guard let port, let datasets else { return }
        notifier.ready(status: "serving \(datasets) datasets on port \(port)")
    }
}
