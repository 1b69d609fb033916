import Hummingbird
import MedSegData

/// `/healthz` and `/readyz`: what load balancers, systemd and Kubernetes probe.
struct OperationsRoutes<Context: RequestContext> {
    let store: CatalogStore

    func register(on routes: RouteTable<Context>) {
        routes.get("/healthz") { request, _ in
            JSONResponse.make(.object(JSONObject([("status", .string("ok"))])), pretty: request.wantsPrettyJSON)
        }
        routes.get("/readyz") { request, _ in
            guard let catalog = store.catalog else {
                throw APIError(.notReady, "the catalog is still loading")
            }
            return JSONResponse.make(
                .object(JSONObject([("status", .string("ready")), ("datasets", .int(catalog.names.count))])),
                pretty: request.wantsPrettyJSON)
        }
    }
}
