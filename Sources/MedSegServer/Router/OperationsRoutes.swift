import Hummingbird
import MedSegData
import NIOCore

/// `/healthz` and `/readyz` (what load balancers and Kubernetes probe), `/metrics` and `/openapi.yaml`.
struct OperationsRoutes<Context: RequestContext> {
    let store: CatalogStore
    let metrics: ServerMetrics
    let cache: ResponseCache

    func register(on routes: some RouterMethods<Context>) {
        routes.get("healthz") { request, _ in
            JSONResponse.make(HealthStatus(status: "ok"), pretty: try request.query(known: ["pretty"]).pretty)
        }
        routes.get("readyz") { request, _ in
            let pretty = try request.query(known: ["pretty"]).pretty
            guard let catalog = store.catalog else {
                throw APIError(.notReady, "the catalog is still loading")
            }
            return JSONResponse.make(HealthStatus(status: "ready", datasets: catalog.names.count), pretty: pretty)
        }
        routes.get("openapi.yaml") { request, _ in
            _ = try request.query(known: [])
            return Response(
                status: .ok, headers: [.contentType: "application/yaml; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: PackageResources.openapi_yaml)))
        }
        routes.get("metrics") { request, _ in
            _ = try request.query(known: [])
            let text = metrics.render(catalog: store.catalog, cache: cache)
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: text)))
        }
    }
}
