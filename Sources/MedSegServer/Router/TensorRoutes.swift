import Hummingbird
import HummingbirdCore
import MedSegData

/// Arrays of items and scans: `items/{i}/image|mask`, `items/{i}` (npz), `scans/{id}/image|mask`.
struct TensorRoutes<Context: RequestContext> {
    let store: CatalogStore
    let settings: ServerSettings
    let cache: ResponseCache

    func register(on routes: RouteTable<Context>) {
        typealias ItemArray = @Sendable (TensorReader, Int, TensorOptions) throws -> any TensorSource
        let itemArrays: [(String, ItemArray)] = [
            ("image", { try $0.image(item: $1, options: $2) }),
            ("mask", { try $0.mask(item: $1, options: $2) }),
        ]
        for (kind, open) in itemArrays {
            routes.get("/v1/datasets/{name}/items/{index}/\(kind)") { request, context in
                let (reader, index) = try itemTarget(context)
                let options = try TensorQuery.options(request.uri.queryParameters)
                return try await single(request, key: "item-\(kind)|\(index)", reader: reader, options: options) {
                    try reader.files(ofItem: index)
                } open: {
                    try open(reader, index, options)
                }
            }
        }
        routes.get("/v1/datasets/{name}/items/{index}") { request, context in
            let (reader, index) = try itemTarget(context)
            let options = try TensorQuery.options(request.uri.queryParameters)
            _ = try TensorEncoding.negotiate(request, allowed: TensorEncoding.archive)
            let tensorRequest = TensorRequest(
                request, key: "item|\(reader.entry.name)|\(index)|\(options.canonical)", limit: settings.maxResponseBytes, cache: cache)
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
        let scanArrays: [(String, ScanArray)] = [
            ("image", { try $0.scanImage($1, aug: $2, options: $3) }),
            ("mask", { try $0.scanMask($1, aug: $2, options: $3) }),
        ]
        for (kind, open) in scanArrays {
            routes.get("/v1/datasets/{name}/scans/{scan}/\(kind)") { request, context in
                let (reader, scan, aug) = try scanTarget(request, context)
                let options = try TensorQuery.options(request.uri.queryParameters)
                return try await single(request, key: "scan-\(kind)|\(scan)|\(aug)", reader: reader, options: options) {
                    try reader.files(ofScan: scan, aug: aug)
                } open: {
                    try open(reader, scan, aug, options)
                }
            }
        }
    }

    /// One array as npy or raw, decided in one trip to the blocking pool: ETag from file
    /// identities first (a 304 or a cache hit reads nothing), then the source opened and read.
    private func single(
        _ request: Request, key: String, reader: TensorReader, options: TensorOptions,
        files: @escaping @Sendable () throws -> [String], open: @escaping @Sendable () throws -> any TensorSource
    ) async throws -> Response {
        let encoding = try TensorEncoding.negotiate(request, allowed: TensorEncoding.singleArray)
        let tensorRequest = TensorRequest(
            request, key: "\(key)|\(reader.entry.name)|\(options.canonical)|\(encoding.rawValue)", limit: settings.maxResponseBytes,
            cache: cache)
        let plan = try await BlockingPool.timed(key.prefix { $0 != "|" }.description) {
            try TensorPlan.single(tensorRequest, encoding: encoding, files: files, open: open)
        }
        return TensorResponse.make(plan)
    }

    private func itemTarget(_ context: Context) throws -> (TensorReader, Int) {
        let entry = try store.requireCatalog().requireEntry(context.datasetName)
        return (TensorReader(entry: entry), try context.itemIndex)
    }

    private func scanTarget(_ request: Request, _ context: Context) throws -> (TensorReader, String, Int) {
        let entry = try store.requireCatalog().requireEntry(context.datasetName)
        let scan = (context.parameters.get("scan") ?? "").removingPercentEncodingOrSelf
        let aug = try request.uri.queryParameters.integer("aug") ?? 0
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
