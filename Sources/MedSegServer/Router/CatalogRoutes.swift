import HTTPTypes
import Hummingbird
import MedSegData
import NIOCore

/// The catalog as JSON: dataset summaries, MetadataCatalog entries, dataset dicts and scans.
struct CatalogRoutes<Context: RequestContext> {
    let store: CatalogStore

    /// Registers under `/v1/datasets`.
    func register(on routes: some RouterMethods<Context>) {
        routes.get { request, _ in
            let pretty = try request.query(known: ["pretty"]).pretty
            let catalog = try store.requireCatalog()
            let summaries = catalog.names.compactMap { catalog[$0]?.summary }.map(JSONValue.object)
            return JSONResponse.make(.object(JSONObject([("datasets", .array(summaries))])), pretty: pretty)
        }
        routes.get("{name}") { request, context in
            let pretty = try request.query(known: ["pretty"]).pretty
            let entry = try store.requireCatalog().requireEntry(context.datasetName)
            var object = entry.summary
            object["metadata"] = .object(entry.metadata.json)
            return JSONResponse.make(.object(object), pretty: pretty)
        }
        routes.get("{name}/metadata") { request, context in
            let pretty = try request.query(known: ["pretty"]).pretty
            let entry = try store.requireCatalog().requireEntry(context.datasetName)
            return JSONResponse.make(.object(entry.metadata.json), pretty: pretty)
        }
        routes.get("{name}/dicts") { request, context in
            let parameters = try request.query(known: DictQuery.known)
            let entry = try store.requireCatalog().requireEntry(context.datasetName)
            return DictStream.response(entry: entry, query: try DictQuery(parameters), pretty: try parameters.pretty)
        }
        routes.get("{name}/scans") { request, context in
            let pretty = try request.query(known: ["pretty"]).pretty
            let entry = try store.requireCatalog().requireEntry(context.datasetName)
            return JSONResponse.make(.array(entry.scans.map(\.json)), pretty: pretty)
        }
    }
}

extension CatalogStore {
    /// The current snapshot, or 503 while the first one loads.
    func requireCatalog() throws(APIError) -> Catalog {
        guard let catalog else { throw APIError(.notReady, "the catalog is still loading") }
        return catalog
    }
}

extension Catalog {
    /// The entry, or a 404 that lists what is registered.
    func requireEntry(_ name: String) throws(APIError) -> CatalogEntry {
        guard let entry = self[name] else {
            let shown = name.count > 100 ? String(name.prefix(100)) + "..." : name
            let registered = names.isEmpty ? "none" : names.joined(separator: ", ")
            throw APIError.notFound("dataset '\(shown)' is not registered; registered: \(registered)")
        }
        return entry
    }
}

extension RequestContext {
    /// The `{name}` path parameter, percent-decoded.
    var datasetName: String {
        let raw = parameters.get("name") ?? ""
        return raw.removingPercentEncodingOrSelf
    }
}

extension String {
    /// Percent-decoded (a path segment: `+` stays `+`); the raw text when it is not valid
    /// percent-encoding of UTF-8.
    var removingPercentEncodingOrSelf: String {
        guard contains("%") else { return self }
        return PercentEncoding.decode(Substring(self), plusIsSpace: false) ?? self
    }
}
