import HTTPTypes
import Hummingbird
import HummingbirdCore
import MedSegData
import NIOCore

/// The array routes: each maps its path and query (or body) to an `ArrayRequest`; everything
/// else (files, arrays, cache, ETag, encoding) follows from that one value.
///
/// `items/{i}/image|mask`, `items/{i}` (npz), `scans/{id}/image|mask`, `POST batch`.
struct ArrayRoutes<Context: RequestContext> {
    let store: CatalogStore
    let settings: LiveSettings
    let cache: ResponseCache
    let memory: ResponseMemory

    /// Registers under `/v1/datasets/{name}`.
    func register(on routes: some RouterMethods<Context>) {
        for arrays in [ArrayRequest.Arrays.image, .mask] {
            routes.get("items/{index}/\(arrays.rawValue)") { request, context in
                try await respond(request, context, arrays: arrays) { _ in .item(try context.itemIndex) }
            }
            routes.get("scans/{scan}/\(arrays.rawValue)") { request, context in
                try await respond(request, context, arrays: arrays, scan: true) { query in
                    .scan(id: (context.parameters.get("scan") ?? "").removingPercentEncodingOrSelf, aug: try query.integer("aug") ?? 0)
                }
            }
        }
        routes.get("items/{index}") { request, context in
            try await respond(request, context, arrays: .pair) { _ in .item(try context.itemIndex) }
        }
        routes.post("batch") { request, context in
            let query = try request.query(known: ["format"])
            let entry = try store.requireCatalog().requireEntry(context.datasetName)
            let encoding = try ArrayEncoding.negotiate(request, format: query["format"], allowed: [.npz])
            let settings = settings.current
            let body = try await request.collectBody(limit: settings.maxBodyBytes)
            let (indices, options, compression) = try ArrayRequest.batch(body: body, maxItems: settings.maxBatchItems)
            let arrayRequest = ArrayRequest(
                dataset: entry.name, target: .batch(indices), arrays: .pair, options: options, encoding: encoding, compression: compression)
            return try await respond(request, arrayRequest, entry: entry, context: context)
        }
    }

    /// A GET array route: the query checked against what the route knows, then the request.
    private func respond(
        _ request: Request, _ context: Context, arrays: ArrayRequest.Arrays, scan: Bool = false,
        target: (QueryParameters) throws -> ArrayRequest.Target
    ) async throws -> Response {
        let query = try request.query(known: ArrayRequest.queryParameters(arrays: arrays, scan: scan))
        let entry = try store.requireCatalog().requireEntry(context.datasetName)
        let target = try target(query)
        let options = try ArrayRequest.options(query: query.decoded)
        let encoding = try ArrayEncoding.negotiate(request, format: query["format"], allowed: ArrayEncoding.allowed(for: arrays, target: target))
        let compression = try ArrayRequest.compression(query["compression"])
        return try await respond(
            request,
            ArrayRequest(dataset: entry.name, target: target, arrays: arrays, options: options, encoding: encoding, compression: compression),
            entry: entry, context: context)
    }

    /// Any array request, decided in one trip to the blocking pool (TensorPlan) and sent.
    private func respond(_ request: Request, _ arrayRequest: ArrayRequest, entry: CatalogEntry, context: Context) async throws -> Response {
        let reader = TensorReader(entry: entry)
        let limit = settings.current.maxResponseBytes
        let tensorRequest = {
            var tensorRequest = TensorRequest(request, key: arrayRequest.canonical(for: entry), roots: entry.roots, limit: limit, cache: cache)
            tensorRequest.findsErrorsWhileReading = arrayRequest.arrays != .image && arrayRequest.options.maskFormat == .labels
            return tensorRequest
        }()
        let memory = memory
        let (first, held) = try await BlockingPool.timed(arrayRequest.kind) { () throws -> (TensorPlan, ResponseMemory.Reservation?) in
            let plan = try TensorPlan.make(tensorRequest, encoding: arrayRequest.encoding, compression: arrayRequest.compression) {
                try reader.files(for: arrayRequest)
            } open: {
                try reader.arrays(for: arrayRequest, byteLimit: limit.bytes)
            }
            // Room for the body now: build it in this same trip to the pool.
            guard case .unbuilt(let pending) = plan, let reservation = memory.tryReserve(pending.length) else { return (plan, nil) }
            return (try pending.build(), reservation)
        }
        guard case .unbuilt(let pending) = first else {
            try await TensorResponse.readThrough(first, memory: memory, context: context)
            return TensorResponse.make(first, memory: memory, holding: held)
        }
        // The body is read only when max_inflight_bytes has room for it, and holds that room until sent.
        let reservation = try await memory.reserve(pending.length, for: context)
        let plan = try await BlockingPool.timed(arrayRequest.kind) { try pending.build() }
        return TensorResponse.make(plan, memory: memory, holding: reservation)
    }
}

extension RequestContext {
    /// The `{index}` path parameter, by the same rule as a batch body's indices.
    var itemIndex: Int {
        get throws(TensorError) { try ArrayRequest.itemIndex(Substring(parameters.get("index") ?? "")) }
    }
}
