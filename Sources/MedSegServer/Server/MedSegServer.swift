public import Hummingbird
import HummingbirdCore
import HummingbirdTLS
public import Logging
import MedSegData
import NIOCore
import NIOSSL

/// Builds the HTTP application over the server state: routes, middleware, TLS and limits.
public enum MedSegServer {
    /// The router with every route of the API contract.
    public static func makeRouter(state: ServerState) -> Router<MedSegRequestContext> {
        let router = Router(context: MedSegRequestContext.self)
        // Outermost first: metrics and the access log see the final status of every request.
        router.add(middleware: MetricsMiddleware())
        router.add(middleware: AccessLogMiddleware(settings: state.settings))
        router.add(middleware: ErrorMiddleware())
        router.add(middleware: BearerAuthMiddleware(tokens: state.tokens))
        let routes = Routes(router: router)
        OperationsRoutes(store: state.store, metrics: state.metrics, cache: state.cache).register(on: routes)
        UIRoutes().register(on: routes)
        CatalogRoutes(store: state.store).register(on: routes.group("v1/datasets"))
        ArrayRoutes(store: state.store, settings: state.settings, cache: state.cache, memory: state.memory).register(
            on: routes.group("v1/datasets/{name}"))
        PreviewRoutes(store: state.store, settings: state.settings, cache: state.cache, memory: state.memory).register(
            on: routes.group("v1/datasets/{name}"))
        FingerprintRoutes(store: state.store, fingerprints: state.fingerprints, settings: state.settings, memory: state.memory).register(
            on: routes.group("v1/datasets/{name}"))
        return router
    }

    public struct StartupError: Error, CustomStringConvertible {
        public var description: String
    }

    /// The application, ready to run as a service. `onListening` receives the bound port
    /// (useful with port 0).
    public static func makeApplication(
        state: ServerState,
        logger: Logger,
        onListening: @escaping @Sendable (Int) async -> Void = { _ in }
    ) throws(StartupError) -> some ApplicationProtocol {
        let settings = state.settings.current
        let idleTimeout = TimeAmount.milliseconds(Int64(settings.idleTimeout / .milliseconds(1)))
        // `idle_timeout: 0` means never: no idle timer at all (a zero one closes every connection).
        var http1 = HTTP1Channel.Configuration(
            additionalChannelHandlers: [WriteProgressHandler(stallTimeout: idleTimeout, memory: state.memory)],
            idleTimeout: idleTimeout > .zero ? idleTimeout : nil)
        http1.httpDecoder = .init(
            maxHeaderFieldSize: settings.maxHeaderBytes.bytes, maxHeaderListSize: settings.maxHeaderBytes.bytes, maxHeaderFieldCount: 200)
        var server = HTTPServerBuilder.http1(configuration: http1)
        if let tls = settings.tls {
            server = try tlsServer(http1: http1, tls)
        }
        let scheme = settings.tls == nil ? "http" : "https"
        return Application(
            router: makeRouter(state: state),
            server: server,
            configuration: ApplicationConfiguration(
                address: .hostname(settings.host, port: settings.port),
                serverName: "medsegd",
                availableConnectionsDelegate: MaximumAvailableConnections(settings.maxConnections)),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? settings.port
                logger.info("listening", metadata: ["address": "\(scheme)://\(settings.host):\(port)"])
                await onListening(port)
            },
            logger: logger)
    }

    private static func tlsServer(http1: HTTP1Channel.Configuration, _ tls: TLSSettings) throws(StartupError) -> HTTPServerBuilder {
        do {
            let chain = try NIOSSLCertificate.fromPEMFile(tls.certificate).map { NIOSSLCertificateSource.certificate($0) }
            let key = try NIOSSLPrivateKey(file: tls.privateKey, format: .pem)
            var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key))
            // TLS 1.0 and 1.1 are deprecated (RFC 8996).
            configuration.minimumTLSVersion = .tlsv12
            return try .tls(.http1(configuration: http1), tlsConfiguration: configuration)
        } catch {
            throw StartupError(description: "cannot set up TLS from \(tls.certificate) and \(tls.privateKey): \(error)")
        }
    }
}
