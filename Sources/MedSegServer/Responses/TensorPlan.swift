import HDF5  // DType only: the server never calls the HDF5 library.
import HTTPTypes
import Hummingbird
import MedSegData
import NIOCore

/// What a tensor response needs from the HTTP request, carried into the blocking pool.
struct TensorRequest: Sendable {
    /// `ArrayRequest.canonical`: with the files' identities it keys the cache and makes the ETag.
    /// Nil for responses that are not cached (batches).
    var key: String?
    var ifNoneMatch: String?
    var isHead: Bool
    var limit: ByteSize
    var cache: ResponseCache

    init(_ request: Request, key: String?, limit: ByteSize, cache: ResponseCache) {
        self.key = key
        self.ifNoneMatch = request.headers[.ifNoneMatch]
        self.isHead = request.method == .head
        self.limit = limit
        self.cache = cache
    }

    func matches(_ etag: String) -> Bool {
        guard let ifNoneMatch else { return false }
        return ifNoneMatch.split(separator: ",").contains { tag in
            let trimmed = tag.trimmingSpaces
            return trimmed == "*" || trimmed == etag || trimmed == "W/" + etag
        }
    }

    /// A 413 unless `bytes` fit in `max_response_bytes`.
    func checkLimit(_ bytes: Int) throws(TensorError) {
        guard bytes <= limit.bytes else { throw TensorReader.overLimit(bytes, limit.bytes) }
    }
}

/// A tensor response decided in one trip to the blocking pool: the ETag, the cache, the files
/// opened, the size checked and, when small enough, the whole body built (and cached).
enum TensorPlan: Sendable {
    case notModified(etag: String)
    /// The whole body (from the cache, or just built).
    case complete(HTTPFields, ByteBuffer)
    /// HEAD: headers and length only; nothing was read.
    case headersOnly(HTTPFields, length: Int)
    /// Too large to hold: written piece by piece.
    case streaming(HTTPFields, length: Int, parts: [StreamPart])

    /// Bodies up to this size are built whole before the response starts (and can be cached);
    /// read errors in them still become JSON errors.
    static let wholeBodyLimit = 8 << 20

    /// The response to `request`: one array as npy or raw, or named arrays as an `.npz` (a
    /// stacked array is one member). Runs on the blocking pool.
    static func make(
        _ request: TensorRequest, encoding: ArrayEncoding, files: () throws -> [String], open: () throws -> [NamedArray]
    ) throws -> TensorPlan {
        var key: ContentKey?
        if let requestKey = request.key {
            // A 304 or a cached body is decided before any file is opened.
            let tagged = ContentKey(request: requestKey, files: try files())
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
        let length: Int
        var parts: [StreamPart] = []
        switch encoding {
        case .npy, .raw:
            let array = arrays[0]
            let header = encoding == .npy ? NPY.header(for: array.layout) : []
            headers[.tensorDtype] = array.layout.dtype.numpyDescriptor
            headers[.tensorShape] = array.layout.shape.map(String.init).joined(separator: ",")
            length = header.count + array.layout.byteCount
            parts = [.bytes(header)] + array.sources.map { .array($0) }
        case .npz:
            let layout = NPZLayout(
                members: arrays.map {
                    NPZLayout.Member(name: $0.name + ".npy", npyHeader: NPY.header(for: $0.layout), dataLength: $0.layout.byteCount)
                })
            length = layout.totalLength
            for (index, array) in arrays.enumerated() {
                parts.append(.bytes(layout.memberPrefix(index)))
                parts.append(.crcStart(layout.members[index].npyHeader))
                parts += array.sources.map { .array($0) }
                parts.append(.crcEnd { layout.memberSuffix(index, crc: $0) })
            }
            parts.append(.trailer { layout.trailer(crcs: $0) })
        }
        headers[.contentLength] = String(length)
        return try finish(request, cacheKey: opened, headers: headers, length: length, sources: sources, parts: parts)
    }

    /// Applies the size limit and HEAD, then builds the body whole when it is small enough.
    private static func finish(
        _ request: TensorRequest, cacheKey: ContentKey?, headers: HTTPFields, length: Int, sources: [any TensorSource], parts: [StreamPart]
    ) throws -> TensorPlan {
        do {
            try request.checkLimit(length)
        } catch {
            for source in sources { source.close() }
            throw error
        }
        if request.isHead {
            for source in sources { source.close() }
            return .headersOnly(headers, length: length)
        }
        guard length <= wholeBodyLimit else { return .streaming(headers, length: length, parts: parts) }
        defer { for source in sources { source.close() } }
        var body = ByteBufferAllocator().buffer(capacity: length)
        var assembler = BodyAssembler()
        for part in parts {
            guard case .array(let source) = part else {
                for piece in assembler.bytes(for: part) { body.writeBytes(piece) }
                continue
            }
            for chunk in 0..<source.chunkCount {
                try body.writeChunk(chunk, of: source, crc: &assembler)
            }
        }
        if let cacheKey { request.cache.put(cacheKey.text, ResponseCache.Entry(headers: headers, body: body)) }
        return .complete(headers, body)
    }
}

/// One piece of a tensor body, in order. CRC markers bracket an npz member's `.npy` bytes.
enum StreamPart: Sendable {
    case bytes([UInt8])
    case array(any TensorSource)
    /// Starts a CRC-32 over the member's `.npy` header and the arrays that follow.
    case crcStart([UInt8])
    /// Ends it: the member's data descriptor, given the CRC.
    case crcEnd(@Sendable (UInt32) -> [UInt8])
    /// The central directory, given every member's CRC.
    case trailer(@Sendable ([UInt32]) -> [UInt8])
}

/// Turns parts into bytes, keeping the CRC state of npz members.
struct BodyAssembler: Sendable {
    private var crc: CRC32?
    private var crcs: [UInt32] = []

    /// The bytes of a part other than an array (arrays are written chunk by chunk by the caller,
    /// which passes their bytes to `add`).
    mutating func bytes(for part: StreamPart) -> [[UInt8]] {
        switch part {
        case .bytes(let bytes):
            return [bytes]
        case .array:
            return []
        case .crcStart(let npyHeader):
            // The header itself went out with the member's local header.
            crc = CRC32()
            crc!.update(npyHeader)
            return []
        case .crcEnd(let suffix):
            let value = crc?.value ?? 0
            crc = nil
            crcs.append(value)
            return [suffix(value)]
        case .trailer(let trailer):
            return [trailer(crcs)]
        }
    }

    /// Counts array bytes into the running CRC (of an npz member; nothing otherwise).
    mutating func add(_ bytes: UnsafeRawBufferPointer) {
        crc?.update(bytes)
    }
}

extension ByteBuffer {
    /// Appends chunk `index` of `source`, read straight into this buffer's memory.
    mutating func writeChunk(_ index: Int, of source: any TensorSource) throws(TensorError) {
        var noCRC = BodyAssembler()
        try writeChunk(index, of: source, crc: &noCRC)
    }

    /// Appends chunk `index` of `source`, read straight into this buffer's memory.
    mutating func writeChunk(_ index: Int, of source: any TensorSource, crc: inout BodyAssembler) throws(TensorError) {
        let count = source.chunkByteCount(index)
        var failure: TensorError?
        writeWithUnsafeMutableBytes(minimumWritableBytes: count) { free in
            let target = UnsafeMutableRawBufferPointer(rebasing: free[0..<count])
            do throws(TensorError) {
                try source.readChunk(index, into: target)
                crc.add(UnsafeRawBufferPointer(target))
            } catch {
                failure = error
            }
            return count
        }
        if let failure { throw failure }
    }
}

extension HTTPField.Name {
    static let tensorDtype = HTTPField.Name("X-Tensor-Dtype")!
    static let tensorShape = HTTPField.Name("X-Tensor-Shape")!
}
