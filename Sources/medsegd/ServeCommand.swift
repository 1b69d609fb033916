import ArgumentParser
import Hummingbird
import Logging
import MedSegData
import MedSegServer
import NIOPosix

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Load the catalogs from a config file and serve them over HTTP.")

    @Option(name: .long, help: "The YAML configuration file (CONFIG.md).")
    var config: String

    @Option(help: "Address to listen on (overrides server.host).")
    var host: String?

    @Option(help: "Port to listen on; 0 picks a free one (overrides server.port).")
    var port: Int?

    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        ProcessTuning.apply()
        let logger = logging.bootstrap(label: "medsegd")
        var configuration = try loadConfiguration(config)
        if let host { configuration.server.host = host }
        if let port {
            guard (0...65535).contains(port) else { throw ValidationError("--port must be in 0...65535") }
            configuration.server.port = port
        }
        logger.info("configuration read", metadata: [
            "files": "\(configuration.files.joined(separator: ", "))", "datasets": "\(configuration.datasets.count)",
        ])

        let loaded = configuration
        let store = CatalogStore()
        let app = MedSegServer.makeApplication(store: store, settings: configuration.server, logger: logger)
        // The socket opens at once (so /healthz answers) while the catalog loads on the blocking
        // pool; /readyz and /v1 answer 503 until it is in place.
        let loading = Task {
            let catalog = try await NIOThreadPool.singleton.runIfActive {
                CatalogLoader.load(loaded, logger: logger)
            }
            store.replace(with: catalog)
            let errors = catalog.problems.filter { $0.severity == .error }.count
            logger.info("catalog loaded", metadata: [
                "datasets": "\(catalog.names.count)", "items": "\(catalog.itemCount)", "problems": "\(catalog.problems.count)",
                "errors": "\(errors)",
            ])
        }
        defer { loading.cancel() }
        try await app.runService()
    }
}
