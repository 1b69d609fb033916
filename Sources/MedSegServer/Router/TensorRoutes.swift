import Hummingbird
import HummingbirdCore
import MedSegData

/// Arrays of items and scans: `items/{i}/image|mask`, `items/{i}` (npz), `scans/{id}/image|mask`.
struct TensorRoutes<Context: RequestContext> {
    let store: CatalogStore
    let settings: LiveSettings
    let cache: ResponseCache

    func register(on routes: RouteTable<Context>) {
        typealias ItemArray = @Sendable (TensorReader, Int, TensorOptions) throws -> any TensorSource
        let itemArrays: [(String, [String], ItemArray)] = [
            ("image", TensorQuery.imageParameters, { try $0.image(item: $1, options: $2) }),
            ("mask", TensorQuery.maskParameters, { try $0.mask(item: $1, options: $2) }),
        ]
        for (kind, known, open) in itemArrays {
            routes.get("/v1/datasets/{name}/items/{index}/\(kind)") { request, context in
                let query = try request.query(known: known)
                let (reader, index) = try itemTarget(context)
                let options = try TensorQuery.options(query)
                return try await single(request, query, route: "item-\(kind)", target: "item \(index)", reader: reader, options: options) {
                    try reader.files(ofItem: index)
                } open: {
                    try open(reader, index, options)
                }
            }
        }
        routes.get("/v1/datasets/{name}/items/{index}") { request, context in
            let query = try request.query(known: TensorQuery.pairParameters)
            let (reader, index) = try itemTarget(context)
            let options = try TensorQuery.options(query)
            _ = try TensorEncoding.negotiate(request, format: query["format"], allowed: TensorEncoding.archive)
            let tensorRequest = TensorRequest(
                request, key: canonical("item", target: "item \(index)", reader: reader, options: options, encoding: .npz),
                limit: settings.current.maxResponseBytes, cache: cache)
            let plan = try await BlockingPool.timed("item") {
                try TensorPlan.archive(tensorRequest, files: { try reader.files(ofItem: index) }) {
                    let image = try reader.image(item: index, options: options)
                    guard try reader.isLabeled(index) else { return [ArchiveMember(name: "image", sources: [image], stacked: false)] }
                    // Mask options never convert: dtype is for the image.
                    var maskOptions = options
                    maskOptions.dtype = nil
                    do {
                        let mask = try reader.mask(item: index, options: maskOptions)
                        return [ArchiveMember(name: "image", sources: [image], stacked: false), ArchiveMember(name: "mask", sources: [mask], stacked: false)]
                    } catch {
                        image.close()
                        throw error
                    }
                }
            }
            return TensorResponse.make(plan)
        }
        typealias ScanArray = @Sendable (TensorReader, String, Int, TensorOptions) throws -> any TensorSource
        let scanArrays: [(String, [String], ScanArray)] = [
            ("image", TensorQuery.imageParameters + ["aug"], { try $0.scanImage($1, aug: $2, options: $3) }),
            ("mask", TensorQuery.maskParameters + ["aug"], { try $0.scanMask($1, aug: $2, options: $3) }),
        ]
        for (kind, known, open) in scanArrays {
            routes.get("/v1/datasets/{name}/scans/{scan}/\(kind)") { request, context in
                let query = try request.query(known: known)
                let (reader, scan, aug) = try scanTarget(query, context)
                let options = try TensorQuery.options(query)
                // The scan id is a catalog name by now (an unknown one is a 404 before any key is used).
                return try await single(
                    request, query, route: "scan-\(kind)", target: "scan \(scan.debugDescription) aug \(aug)", reader: reader, options: options
                ) {
                    try reader.files(ofScan: scan, aug: aug)
                } open: {
                    try open(reader, scan, aug, options)
                }
            }
        }
    }

    /// The request's canonical form: route, dataset and its format, target, options (default
    /// categories resolved) and encoding.
    private func canonical(_ route: String, target: String, reader: TensorReader, options: TensorOptions, encoding: TensorEncoding) -> String {
        let entry = reader.entry
        return "\(route)\n\(entry.name)\n\(entry.format.rawValue)\n\(target)\n\(options.canonical(defaultCategories: entry.metadata.categoryIDs))\n\(encoding.rawValue)"
    }

    /// One array as npy or raw, decided in one trip to the blocking pool: ETag from file
    /// identities first (a 304 or a cache hit reads nothing), then the source opened and read.
    private func single(
        _ request: Request, _ query: QueryParameters, route: String, target: String, reader: TensorReader, options: TensorOptions,
        files: @escaping @Sendable () throws -> [String], open: @escaping @Sendable () throws -> any TensorSource
    ) async throws -> Response {
        let encoding = try TensorEncoding.negotiate(request, format: query["format"], allowed: TensorEncoding.singleArray)
        let tensorRequest = TensorRequest(
            request, key: canonical(route, target: target, reader: reader, options: options, encoding: encoding),
            limit: settings.current.maxResponseBytes, cache: cache)
        let plan = try await BlockingPool.timed(route) {
            try TensorPlan.single(tensorRequest, encoding: encoding, files: files, open: open)
        }
        return TensorResponse.make(plan)
    }

    private func itemTarget(_ context: Context) throws -> (TensorReader, Int) {
        let entry = try store.requireCatalog().requireEntry(context.datasetName)
        return (TensorReader(entry: entry), try context.itemIndex)
    }

    private func scanTarget(_ query: QueryParameters, _ context: Context) throws -> (TensorReader, String, Int) {
        let entry = try store.requireCatalog().requireEntry(context.datasetName)
        let scan = (context.parameters.get("scan") ?? "").removingPercentEncodingOrSelf
        let aug = try query.integer("aug") ?? 0
        return (TensorReader(entry: entry), scan, aug)
    }
}

extension RequestContext {
    /// The `{index}` path parameter: a whole number, or 400; negative or huge indices are 404s
    /// (out of range), as the contract has it.
    var itemIndex: Int {
        get throws(APIError) {
            let text = parameters.get("index") ?? ""
            if let index = Int(text) {
                guard index >= 0 else { throw APIError.notFound("item \(index) is out of range: indices start at 0") }
                return index
            }
            let digits = text.hasPrefix("-") ? text.dropFirst() : Substring(text)
            if !digits.isEmpty, digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber) {
                throw APIError.notFound("item \(text.prefix(40)) is out of range")
            }
            throw APIError.badRequest("item index must be a whole number, not '\(text.prefix(40))'")
        }
    }
}
