import HTTPTypes
import Hummingbird
import MedSegData
import NIOCore

/// The catalog as JSON: dataset summaries, MetadataCatalog entries, dataset dicts and scans.
struct CatalogRoutes<Context: RequestContext> {
    let store: CatalogStore

    func register(on routes: RouteTable<Context>) {
        routes.get("/v1/datasets") { request, _ in
            let pretty = try request.query(known: ["pretty"]).pretty
            let catalog = try store.requireCatalog()
            let summaries = catalog.names.compactMap { catalog[$0]?.summary }.map(JSONValue.object)
            return JSONResponse.make(.object(JSONObject([("datasets", .array(summaries))])), pretty: pretty)
        }
        routes.get("/v1/datasets/{name}") { request, context in
            let pretty = try request.query(known: ["pretty"]).pretty
            let entry = try store.requireCatalog().requireEntry(context.datasetName)
            var object = entry.summary
            object["metadata"] = .object(entry.metadata.json)
            return JSONResponse.make(.object(object), pretty: pretty)
        }
        routes.get("/v1/datasets/{name}/metadata") { request, context in
            let pretty = try request.query(known: ["pretty"]).pretty
            let entry = try store.requireCatalog().requireEntry(context.datasetName)
            return JSONResponse.make(.object(entry.metadata.json), pretty: pretty)
        }
        routes.get("/v1/datasets/{name}/dicts") { request, context in
            let parameters = try request.query(known: DictQuery.known)
            let entry = try store.requireCatalog().requireEntry(context.datasetName)
            return DictStream.response(entry: entry, query: try DictQuery(parameters), pretty: try parameters.pretty)
        }
        routes.get("/v1/datasets/{name}/scans") { request, context in
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
    /// Percent-decoded; the raw text when it is not valid percent-encoding of UTF-8.
    var removingPercentEncodingOrSelf: String {
        guard contains("%") else { return self }
        var bytes: [UInt8] = []
        var iterator = utf8.makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%") {
                guard let high = iterator.next().flatMap(Self.hexValue), let low = iterator.next().flatMap(Self.hexValue) else { return self }
                bytes.append(high << 4 | low)
            } else {
                bytes.append(byte)
            }
        }
        return String(validating: bytes, as: UTF8.self) ?? self
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
