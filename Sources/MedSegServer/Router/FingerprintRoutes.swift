import FoundationEssentials
import HTTPTypes
import Hummingbird
import MedSegData
import NIOCore

/// Dataset fingerprints and server-side patch sampling:
/// `GET {name}/fingerprint`, `GET {name}/scans/{scan}/fingerprint?aug=`, `POST {name}/sample`.
struct FingerprintRoutes<Context: RequestContext> {
    let store: CatalogStore
    let fingerprints: FingerprintService
    let settings: LiveSettings
    let memory: ResponseMemory

    /// Registers under `/v1/datasets/{name}`.
    func register(on routes: some RouterMethods<Context>) {
        routes.get("fingerprint") { request, context in
            let pretty = try request.query(known: ["pretty"]).pretty
            let (fingerprint, _) = try ready(context)
            // A dataset's fingerprint lists every volume: encoded on the pool, not an event loop.
            return try await BlockingPool.run { Self.json(fingerprint, pretty: pretty) }
        }
        routes.get("scans/{scan}/fingerprint") { request, context in
            let query = try request.query(known: ["pretty", "aug"])
            let scanID = (context.parameters.get("scan") ?? "").removingPercentEncodingOrSelf
            let aug = try query.integer("aug") ?? 0
            let (fingerprint, _) = try ready(context)
            guard let scan = fingerprint.scans.first(where: { $0.scanID == scanID && $0.aug == aug }) else {
                throw APIError.notFound(
                    "no fingerprint of scan '\(scanID.prefix(100))' at aug \(aug) in dataset '\(fingerprint.dataset)' (see /scans; unreadable volumes are skipped)"
                )
            }
            return Self.json(scan, pretty: try query.pretty)
        }
        routes.post("sample") { request, context in
            _ = try request.query(known: [])
            let catalog = try store.requireCatalog()
            let entry = try catalog.requireEntry(context.datasetName)
            let limits = settings.current
            let body = try await request.collectBody(limit: limits.maxBodyBytes)
            let sample = try SampleRequest.parse(body: body, maxItems: limits.maxBatchItems)
            let (_, records) = try ready(context)
            let reader = TensorReader(entry: entry)
            // One ByteBuffer holds the sample, and its capacity is 32-bit.
            let limit = min(limits.maxResponseBytes.bytes, Int(UInt32.max) - (1 << 20))
            // Drawing works per patch and class: on the pool, not an event loop. The sample's
            // size is known before anything is reserved or read.
            let (plans, expected, footprint) = try await refreshingStale(catalog, entry) {
                try await BlockingPool.timed("sample") {
                    let plans = try PatchPlan.draw(sample, entry: entry, records: records)
                    let expected = try reader.checkFingerprints(of: plans, records: records)
                    let footprint = try reader.sampleFootprint(plans, request: sample)
                    guard footprint.responseBytes <= limit else { throw TensorReader.overLimit(footprint.responseBytes, limit) }
                    return (plans, expected, footprint)
                }
            }
            // Held against max_inflight_bytes from the read until sent.
            let reservation = try await memory.reserve(footprint.heldBytes, for: context)
            let archive = try await refreshingStale(catalog, entry) {
                try await BlockingPool.timed("sample") {
                    let arrays = try reader.patches(plans, request: sample, expected: expected, byteLimit: limit)
                    return ByteBuffer.npz(arrays, compression: sample.compression)
                }
            }
            let headers: HTTPFields = [.contentType: ArrayEncoding.npz.mediaType, .contentLength: String(archive.readableBytes)]
            return TensorResponse.make(.complete(headers, archive), memory: memory, holding: reservation)
        }
    }

    /// Runs `work`; a volume found changed since its fingerprint starts a new pass over the
    /// catalog (unchanged volumes are reused) and answers 503 with `Retry-After`, never stale patches.
    private func refreshingStale<Value>(_ catalog: Catalog, _ entry: CatalogEntry, _ work: () async throws -> Value) async throws -> Value {
        do {
            return try await work()
        } catch let stale as StaleFingerprint {
            fingerprints.recompute(catalog, dataset: entry.name)
            throw APIError(.notReady, "\(stale); it is being recomputed: retry shortly", headers: [.retryAfter: "5"])
        }
    }

    /// The dataset's fingerprint and records, or 503 with `Retry-After` while its pass runs.
    private func ready(_ context: Context) throws -> (DatasetFingerprint, [ScanRecord]) {
        let catalog = try store.requireCatalog()
        let entry = try catalog.requireEntry(context.datasetName)
        switch fingerprints.status(of: entry, in: catalog) {
        case .ready(let fingerprint, let records):
            return (fingerprint, records)
        case .pending(let done, let total):
            throw APIError(
                .notReady, "the fingerprint of dataset '\(entry.name)' is being computed (\(done) of \(total) volumes); retry shortly",
                headers: [.retryAfter: "5"])
        }
    }

    private static func json(_ value: some Encodable, pretty: Bool) -> Response {
        JSONResponse.make(value, pretty: pretty)
    }
}
