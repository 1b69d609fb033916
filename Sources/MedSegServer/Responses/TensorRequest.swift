import HTTPTypes
import Hummingbird
import MedSegData

/// What a tensor response needs from the HTTP request, carried into the blocking pool.
struct TensorRequest: Sendable {
    /// `ArrayRequest.canonical`: with the files' identities it keys the cache and makes the ETag.
    /// Nil for responses that are not cached (batches).
    var key: String?
    /// The dataset's roots: files in the ETag are named relative to them.
    var roots: DataRoots
    var ifNoneMatch: String?
    var isHead: Bool
    /// Reading may refuse the data (overlapping classes in a label map): such bodies are built
    /// whole before the head up to a larger size (`TensorPlan.labelsWholeBodyLimit`).
    var findsErrorsWhileReading = false
    var limit: ByteSize
    var cache: ResponseCache

    init(_ request: Request, key: String?, roots: DataRoots, limit: ByteSize, cache: ResponseCache) {
        self.key = key
        self.roots = roots
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
