public import Hummingbird
public import Logging
public import MedSegData
import NIOCore

/// Builds the HTTP application over a catalog store: routes, middleware, listening address.
public enum MedSegServer {
    /// The router with every route of the API contract.
    public static func makeRouter(
        store: CatalogStore, settings: ServerSettings, cache: ResponseCache? = nil
    ) -> Router<MedSegRequestContext> {
        let cache = cache ?? ResponseCache(budget: settings.cacheBytes.bytes)
        let router = Router(context: MedSegRequestContext.self)
        router.add(middleware: ErrorMiddleware())
        let routes = RouteTable(router: router)
        OperationsRoutes(store: store).register(on: routes)
        CatalogRoutes(store: store).register(on: routes)
        TensorRoutes(store: store, settings: settings, cache: cache).register(on: routes)
        BatchRoutes(store: store, settings: settings).register(on: routes)
        routes.finish()
        return router
    }

    /// The application, ready for `runService()`. `onListening` receives the bound port
    /// (useful with port 0).
    public static func makeApplication(
        store: CatalogStore,
        settings: ServerSettings,
        logger: Logger,
        onListening: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        Application(
            router: makeRouter(store: store, settings: settings),
            configuration: ApplicationConfiguration(
                address: .hostname(settings.host, port: settings.port),
                serverName: "medsegd"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? settings.port
                logger.info("listening", metadata: ["address": "http://\(settings.host):\(port)"])
                await onListening(port)
            },
            logger: logger)
    }
}
