import ArgumentParser
import Foundation
import Logging
import MedSegData
import MedSegServer
import Metrics
import NIOCore
import Prometheus

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Load the catalogs from a config file and serve them over HTTP.",
        discussion:
            "SIGHUP reloads the configuration; SIGTERM and SIGINT stop gracefully. Under systemd (Type=notify) it reports READY, RELOADING and STOPPING."
    )

    @Option(name: .long, help: "The YAML configuration file (CONFIG.md).")
    var config: String

    @Option(help: "Address to listen on (overrides server.host).")
    var host: String?

    @Option(help: "Port to listen on; 0 picks a free one (overrides server.port).")
    var port: Int?

    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        ProcessTuning.apply()
        // HDF5 opens each new file version in a child first: a file that crashes the library
        // takes the child down, not the server.
        HDF5Vetting.shared.enable(executable: "/proc/self/exe")
        let logger = logging.bootstrap(label: "medsegd")
        if let port, !(0...65535).contains(port) { throw ValidationError("--port must be in 0...65535") }
        let overrides = Reloader.Overrides(host: host, port: port)
        var configuration = try loadConfiguration(config)
        if let host { configuration.server.host = host }
        if let port { configuration.server.port = port }
        logger.info(
            "configuration read",
            metadata: [
                "files": "\(configuration.files.joined(separator: ", "))", "datasets": "\(configuration.datasets.count)",
            ])
        let metrics = ServerMetrics()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: metrics.registry))
        do {
            try await Daemon.run(
                configuration: configuration, configPath: config, overrides: overrides, metrics: metrics,
                environment: ProcessInfo.processInfo.environment, logger: logger)
        } catch let error as TokenStore.LoadError {
            printError("cannot start: \(error)")
            throw ExitCode(78)
        } catch let error as MedSegServer.StartupError {
            printError("cannot start: \(error)")
            throw ExitCode(78)
        } catch let error as IOError where [EADDRINUSE, EADDRNOTAVAIL, EACCES].contains(error.errnoCode) {
            // Not a configuration error (exit 1, so systemd may retry): the port may free up.
            let address = "\(configuration.server.host):\(configuration.server.port)"
            let advice: String
            switch error.errnoCode {
            case EADDRINUSE:
                advice =
                    "the address is already in use: stop what listens there (`ss -ltnp 'sport = :\(configuration.server.port)'` shows it) or choose another port (--port or server.port)"
            case EACCES: advice = "permission denied: ports below 1024 need privileges; choose a port of 1024 or more (--port or server.port)"
            default: advice = "this machine has no such address: use one of its own (--host or server.host), or 0.0.0.0 for all"
            }
            printError("cannot start: cannot listen on \(address): \(advice)")
            throw ExitCode(1)
        }
    }
}
