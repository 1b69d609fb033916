import Hummingbird
import HummingbirdCore
import MedSegData
import NIOCore

/// `POST /v1/datasets/{name}/batch`: many items in one `.npz`, images and masks stacked.
struct BatchRoutes<Context: RequestContext> {
    let store: CatalogStore
    let settings: LiveSettings
    let cache: ResponseCache

    func register(on routes: RouteTable<Context>) {
        routes.post("/v1/datasets/{name}/batch") { request, context in
            let query = try request.query(known: ["format"])
            let entry = try store.requireCatalog().requireEntry(context.datasetName)
            let settings = settings.current
            _ = try TensorEncoding.negotiate(request, format: query["format"], allowed: TensorEncoding.archive)
            var body = try await request.body.collect(upTo: settings.maxBodyBytes.bytes)
            let batch = try BatchRequest(body.readBytes(length: body.readableBytes) ?? [])
            guard batch.indices.count <= settings.maxBatchItems else {
                throw APIError(.tooLarge, "a batch may hold \(settings.maxBatchItems) items (max_batch_items); this one has \(batch.indices.count)")
            }
            let reader = TensorReader(entry: entry)
            // POST bodies carry no ETag and are not cached (no key).
            let tensorRequest = TensorRequest(request, key: nil, limit: settings.maxResponseBytes, cache: cache)
            let plan = try await BlockingPool.timed("batch") {
                try TensorPlan.archive(tensorRequest, files: { [] }) { try Self.open(batch, reader: reader, request: tensorRequest) }
            }
            return TensorResponse.make(plan)
        }
    }

    /// Opens every item's image and mask (checking shapes agree) before any byte is sent. The
    /// size is checked as items are opened, so a batch over `max_response_bytes` stops at the
    /// first item past it rather than opening them all.
    private static func open(_ batch: BatchRequest, reader: TensorReader, request: TensorRequest) throws -> [ArchiveMember] {
        var images: [any TensorSource] = []
        var masks: [any TensorSource] = []
        do {
            for index in batch.indices {
                guard try reader.isLabeled(index) else {
                    throw APIError(.unprocessable, "item \(index) of the batch is unlabeled: it has no mask")
                }
            }
            var maskOptions = batch.options
            maskOptions.dtype = nil
            var bytes = 0
            for index in batch.indices {
                images.append(try reader.image(item: index, options: batch.options))
                masks.append(try reader.mask(item: index, options: maskOptions))
                // Each term is at most the limit (checked first), so the sum cannot overflow.
                for source in [images[images.count - 1], masks[masks.count - 1]] {
                    try request.checkLimit(source.layout.byteCount)
                    bytes += source.layout.byteCount
                    try request.checkLimit(bytes)
                }
            }
            try checkShapes(images, batch.indices, what: "image")
            try checkShapes(masks, batch.indices, what: "mask")
        } catch {
            for source in images + masks { source.close() }
            throw error
        }
        return [
            ArchiveMember(name: "image", sources: images, stacked: true),
            ArchiveMember(name: "mask", sources: masks, stacked: true),
        ]
    }

    private static func checkShapes(_ sources: [any TensorSource], _ indices: [Int], what: String) throws {
        guard let first = sources.first?.layout else { return }
        if let position = sources.firstIndex(where: { $0.layout != first }) {
            let other = sources[position].layout
            throw APIError(.unprocessable, "items \(indices[0]) and \(indices[position]) differ in \(what) \(first.shape == other.shape ? "dtype" : "shape"): \(first) vs \(other); a batch needs one shape (use region=)")
        }
    }
}

/// The JSON body of a batch request.
struct BatchRequest {
    static let keys = ["indices", "categories", "background", "region", "dtype"]

    var indices: [Int]
    var options: TensorOptions

    init(_ bytes: [UInt8]) throws(APIError) {
        let value: JSONValue
        do {
            value = try JSONParser.parse(bytes, maxDepth: 8)
        } catch {
            throw APIError.badRequest("batch body is not valid JSON: \(error)")
        }
        guard case .object(let object) = value else { throw APIError.badRequest("batch body must be a JSON object with 'indices'") }
        if let unknown = object.keys.first(where: { !Self.keys.contains($0) }) {
            throw APIError.badRequest("unknown key '\(unknown.prefix(40))' in batch body (allowed: \(Self.keys.joined(separator: ", ")))")
        }
        guard case .array(let list)? = object["indices"], !list.isEmpty else {
            throw APIError.badRequest("batch body needs 'indices', a non-empty list of item indices")
        }
        var indices: [Int] = []
        for element in list {
            guard case .number(let text) = element else { throw APIError.badRequest("'indices' holds \(element.typeName); item indices are whole numbers") }
            guard let index = Int(text) else {
                if text.allSatisfy({ $0.isNumber || $0 == "-" }) { throw APIError.notFound("item \(text.prefix(40)) is out of range") }
                throw APIError.badRequest("'indices' holds \(text.prefix(40)); item indices are whole numbers")
            }
            guard index >= 0 else { throw APIError.notFound("item \(index) is out of range: indices start at 0") }
            indices.append(index)
        }
        self.indices = indices
        func text(_ key: String) throws(APIError) -> String? {
            guard let value = object[key], value != .null else { return nil }
            guard let string = value.stringValue else { throw APIError.badRequest("'\(key)' must be a string") }
            return string
        }
        var categories: CategorySelection?
        if let value = object["categories"], value != .null {
            categories = try TensorQuery.categories(value)
        }
        options = try TensorQuery.options(
            region: try text("region"), categories: categories, background: try text("background"), dtype: try text("dtype"))
    }
}
