import HTTPTypes
import Hummingbird
import MedSegData
import NIOCore

/// Slice previews as PNG: `items/{i}/preview.png` and `scans/{scan}/preview.png`, with ETags,
/// 304 and the response cache as for arrays.
struct PreviewRoutes<Context: RequestContext> {
    let store: CatalogStore
    let settings: LiveSettings
    let cache: ResponseCache
    let memory: ResponseMemory

    /// Registers under `/v1/datasets/{name}`.
    func register(on routes: some RouterMethods<Context>) {
        routes.get("items/{index}/preview.png") { request, context in
            try await respond(request, context, scan: false) { _ in .item(try context.itemIndex) }
        }
        routes.get("scans/{scan}/preview.png") { request, context in
            try await respond(request, context, scan: true) { query in
                .scan(id: (context.parameters.get("scan") ?? "").removingPercentEncodingOrSelf, aug: try query.integer("aug") ?? 0)
            }
        }
    }

    private func respond(
        _ request: Request, _ context: Context, scan: Bool, target: (QueryParameters) throws -> TensorReader.PreviewTarget
    ) async throws -> Response {
        let query = try request.query(known: PreviewRequest.queryParameters + (scan ? ["aug"] : []))
        let entry = try store.requireCatalog().requireEntry(context.datasetName)
        let preview = try PreviewRequest.parse(query.decoded)
        let previewTarget = try target(query)
        // The key: what the mask request of the same target and categories means, then the drawing.
        let arrayTarget: ArrayRequest.Target
        switch previewTarget {
        case .item(let index): arrayTarget = .item(index)
        case .scan(let id, let aug): arrayTarget = .scan(id: id, aug: aug)
        }
        let arrays = ArrayRequest(
            dataset: entry.name, target: arrayTarget, arrays: .pair, options: TensorOptions(categories: preview.categories), encoding: .npz)
        let reader = TensorReader(entry: entry)
        let tensorRequest = TensorRequest(
            request, key: arrays.canonical(for: entry), roots: entry.roots, limit: settings.current.maxResponseBytes, cache: cache)
        let decision = try await BlockingPool.timed("preview") { () throws -> PreviewDecision in
            // The slice is part of the key (the default one: "middle").
            // The colours drawn are part of the bytes: a reload may change them.
            let colors = reader.colors(for: preview.categories).map { $0.map(String.init).joined(separator: ",") }.joined(separator: ";")
            let requestKey = (tensorRequest.key ?? "") + "\n" + preview.canonical + " colors=" + colors
            let key = ContentKey(request: requestKey, files: try reader.files(for: arrays), roots: entry.roots)
            let etag = ETag.of(key)
            if tensorRequest.matches(etag) { return .answered(Response(status: .notModified, headers: [.eTag: etag])) }
            if let hit = cache.get(key.text) {
                return .answered(Response(status: .ok, headers: hit.headers, body: ResponseBody(byteBuffer: hit.body)))
            }
            return .render(key, pixels: try reader.previewPixels(previewTarget, request: preview))
        }
        let key: ContentKey
        let pixels: Int
        switch decision {
        case .answered(let response): return response
        case .render(let decided, let count): (key, pixels) = (decided, count)
        }
        // Rendering holds ~40 bytes a pixel of the slice (bounded by maxPreviewPixels) until drawn.
        let reservation = try await memory.reserve(pixels * 40, for: context)
        return try await BlockingPool.timed("preview") { () throws -> Response in
            withExtendedLifetime(reservation) {}
            let slice = try reader.previewSlice(previewTarget, request: preview, byteLimit: tensorRequest.limit.bytes)
            let picture = SliceRenderer.render(image: slice.image, mask: slice.mask, colors: slice.colors, request: preview)
            let png = PNG.encode(rgb: picture.rgb, width: picture.width, height: picture.height)
            let opened = key.opened(slice.opened)
            let headers: HTTPFields = [.contentType: "image/png", .eTag: ETag.of(opened), .contentLength: String(png.count)]
            let body = ByteBuffer(bytes: png)
            cache.put(opened.text, ResponseCache.Entry(headers: headers, body: body))
            if tensorRequest.isHead {
                return Response(status: .ok, headers: headers, body: ResponseBody(contentLength: png.count) { try await $0.finish(nil) })
            }
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: body))
        }
    }
}

/// A preview decided before drawing: answered from the ETag or the cache, or to be drawn.
private enum PreviewDecision: Sendable {
    case answered(Response)
    case render(ContentKey, pixels: Int)
}
