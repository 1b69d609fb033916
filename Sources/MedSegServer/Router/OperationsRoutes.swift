import Hummingbird
import MedSegData
import NIOCore

/// `/healthz` and `/readyz` (what load balancers and Kubernetes probe), `/metrics` and `/openapi.yaml`.
struct OperationsRoutes<Context: RequestContext> {
    let store: CatalogStore
    let metrics: ServerMetrics
    let cache: ResponseCache

    func register(on routes: RouteTable<Context>) {
        routes.get("/healthz") { request, _ in
            JSONResponse.make(.object(JSONObject([("status", .string("ok"))])), pretty: try request.prettyOption)
        }
        routes.get("/readyz") { request, _ in
            guard let catalog = store.catalog else {
                throw APIError(.notReady, "the catalog is still loading")
            }
            return JSONResponse.make(
                .object(JSONObject([("status", .string("ready")), ("datasets", .int(catalog.names.count))])),
                pretty: try request.prettyOption)
        }
        routes.get("/openapi.yaml") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "application/yaml; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: OpenAPIDocument.yaml + "\n")))
        }
        routes.get("/metrics") { _, _ in
            let text = metrics.render(catalog: store.catalog, cache: cache)
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: text)))
        }
    }
}
