import HDF5  // DType only: the server never calls the HDF5 library.
import HTTPTypes
import Hummingbird
import MedSegData
import NIOCore

/// A tensor response decided in one trip to the blocking pool: the ETag, the cache, the files
/// opened, the size checked and, when small enough, the whole body built (and cached).
enum TensorPlan: Sendable {
    case notModified(etag: String)
    /// The whole body (from the cache, or just built).
    case complete(HTTPFields, ByteBuffer)
    /// HEAD: headers and length (unknown for compressed bodies) only; nothing was read.
    case headersOnly(HTTPFields, length: Int?)
    /// Too large to hold: written piece by piece (chunked when compression hides the length).
    /// `checkFirst`: label maps to read through before the head (`TensorResponse.readThrough`).
    case streaming(HTTPFields, length: Int?, parts: [StreamPart], checkFirst: [any TensorSource])
    /// Small enough to build whole, once memory for it is reserved (`ResponseMemory`).
    case unbuilt(PendingBody)

    /// Bodies up to this size are built whole before the response starts (and can be cached);
    /// read errors in them still become JSON errors.
    static let wholeBodyLimit = 8 << 20
    /// Bodies with label maps are built whole up to this size: an overlap is found only by
    /// reading the mask, and found before the head it is a 422 naming the pixel, not a body cut
    /// after a 200. Larger ones read their label maps through once before the head
    /// (`TensorResponse.readThrough`).
    static let labelsWholeBodyLimit = 64 << 20

    /// The response to `request`: one array as npy or raw, or named arrays as an `.npz` (a
    /// stacked array is one member). Runs on the blocking pool.
    static func make(
        _ request: TensorRequest, encoding: ArrayEncoding, compression: MemberCompression, files: () throws -> [String],
        open: () throws -> [NamedArray]
    ) throws -> TensorPlan {
        var key: ContentKey?
        if let requestKey = request.key {
            // A 304 or a cached body is decided before any file is opened.
            let tagged = ContentKey(request: requestKey, files: try files(), roots: request.roots)
            let etag = ETag.of(tagged)
            if request.matches(etag) { return .notModified(etag: etag) }
            if let hit = request.cache.get(tagged.text) {
                // A cached body still obeys max_response_bytes, which a reload may have lowered.
                try request.checkLimit(hit.body.readableBytes)
                return .complete(hit.headers, hit.body)
            }
            key = tagged
        }
        let arrays = try open()
        let sources = arrays.flatMap(\.sources)
        // The versions actually opened name the bytes (a file replaced since `stat` included).
        let opened = key?.opened(sources.reduce(into: [:]) { $0.merge($1.openedFiles) { first, _ in first } })
        // The same URL sends npy or raw as `Accept` says: shared caches must key on it.
        var headers: HTTPFields = [.contentType: encoding.mediaType, .vary: "Accept"]
        if let opened { headers[.eTag] = ETag.of(opened) }
        var body: BodyPlan
        switch encoding {
        case .npy, .raw:
            let array = arrays[0]
            let header = encoding == .npy ? NPY.header(for: array.layout) : []
            headers[.tensorDtype] = array.layout.dtype.numpyDescriptor
            headers[.tensorShape] = array.layout.shape.map(String.init).joined(separator: ",")
            let length = header.count.addingReportingOverflow(array.layout.byteCount)
            body = BodyPlan(length: length.overflow ? .max : length.partialValue, knownLength: true, parts: [.bytes(header)])
            body.parts += array.sources.map { .array($0, nil) }
        case .npz:
            let writer = NPZWriter(
                members: arrays.map {
                    NPZMember(
                        name: $0.name + ".npy", npyHeader: NPY.header(for: $0.layout), dataLength: $0.layout.byteCount,
                        compression: compression.method(forMember: $0.name))
                })
            body = BodyPlan(length: writer.storedLength, knownLength: writer.plannedLength != nil, parts: [])
            for (index, array) in arrays.enumerated() {
                body.parts.append(.memberStart(writer, index))
                body.parts += array.sources.map { .array($0, writer) }
                body.parts.append(.memberEnd(writer))
            }
            body.parts.append(.trailer(writer))
        }
        if body.knownLength { headers[.contentLength] = String(body.length) }
        // Label maps may be refused while reading (two classes at a pixel): read before the head.
        let checked = request.findsErrorsWhileReading ? arrays.filter { $0.name == "mask" }.flatMap(\.sources) : []
        return try finish(request, cacheKey: opened, headers: headers, body: body, sources: sources, checkFirst: checked)
    }

    /// A body's parts and its length: exact, or (compressed members) the most it can hold
    /// before compression, which limits and reservations count.
    struct BodyPlan {
        var length: Int
        var knownLength: Bool
        var parts: [StreamPart]
    }

    /// Applies the size limit and HEAD, then builds the body whole when it is small enough.
    private static func finish(
        _ request: TensorRequest, cacheKey: ContentKey?, headers: HTTPFields, body: BodyPlan, sources: [any TensorSource],
        checkFirst: [any TensorSource] = []
    ) throws -> TensorPlan {
        do {
            try request.checkLimit(body.length)
        } catch {
            for source in sources { source.close() }
            throw error
        }
        let exactLength = body.knownLength ? body.length : nil
        if request.isHead {
            for source in sources { source.close() }
            return .headersOnly(headers, length: exactLength)
        }
        guard body.length <= (request.findsErrorsWhileReading ? labelsWholeBodyLimit : wholeBodyLimit) else {
            return .streaming(headers, length: exactLength, parts: body.parts, checkFirst: checkFirst)
        }
        return .unbuilt(PendingBody(request: request, cacheKey: cacheKey, headers: headers, length: body.length, sources: sources, parts: body.parts))
    }
}

/// A whole body to build: its arrays are open and its length (or, compressed, its bound) known;
/// the bytes are read once `ResponseMemory` has room for them. Sources never built are closed
/// when it goes.
final class PendingBody: Sendable {
    let request: TensorRequest
    let cacheKey: ContentKey?
    let headers: HTTPFields
    let length: Int
    let parts: [StreamPart]
    private let guardian: SourceGuardian

    init(request: TensorRequest, cacheKey: ContentKey?, headers: HTTPFields, length: Int, sources: [any TensorSource], parts: [StreamPart]) {
        self.request = request
        self.cacheKey = cacheKey
        self.headers = headers
        self.length = length
        self.parts = parts
        self.guardian = SourceGuardian(sources)
    }

    /// Reads every part into one buffer (and caches it). Runs on the blocking pool.
    func build() throws -> TensorPlan {
        defer { guardian.closeNow() }
        var body = ByteBufferAllocator().buffer(capacity: length)
        for part in parts {
            guard case .array(let source, let writer) = part else {
                body.writeBytes(part.bytes)
                continue
            }
            for chunk in 0..<source.chunkCount {
                try body.writeChunk(chunk, of: source, through: writer)
            }
        }
        var headers = headers
        headers[.contentLength] = String(body.readableBytes)
        if let cacheKey { request.cache.put(cacheKey.text, ResponseCache.Entry(headers: headers, body: body)) }
        return .complete(headers, body)
    }
}

extension HTTPField.Name {
    static let tensorDtype = HTTPField.Name("X-Tensor-Dtype")!
    static let tensorShape = HTTPField.Name("X-Tensor-Shape")!
}
