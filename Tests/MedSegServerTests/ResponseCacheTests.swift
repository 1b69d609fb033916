import HTTPTypes
import MedSegServer
import NIOCore
import Testing

@Suite("ResponseCache: byte budget, least recently used first")
struct ResponseCacheTests {
    private func entry(_ size: Int) -> ResponseCache.Entry {
        ResponseCache.Entry(headers: [:], body: ByteBuffer(repeating: 7, count: size))
    }

    @Test("hits and misses are counted; the oldest entry goes when the budget is exceeded")
    func eviction() {
        // Each entry counts its body and its key: 101 bytes.
        let cache = ResponseCache(budget: 808)
        cache.put("a", entry(100))
        cache.put("b", entry(100))
        #expect(cache.get("a")?.body.readableBytes == 100)  // a is now the most recent
        for key in ["c", "d", "e", "f", "g", "h", "i"] { cache.put(key, entry(100)) }
        #expect(cache.get("b") == nil, "b was the least recently used")
        #expect(cache.get("a") != nil)
        let statistics = cache.statistics
        #expect(statistics.bytes <= 808)
        #expect(statistics.evictions == 1)
        #expect(statistics.hits == 2)
        #expect(statistics.misses == 1)
    }

    @Test("entries over an eighth of the budget are not kept; a zero budget keeps nothing")
    func limits() {
        let cache = ResponseCache(budget: 808)
        cache.put("big", entry(99))  // 102 bytes with its key: over 808 / 8
        #expect(cache.get("big") == nil)
        let off = ResponseCache(budget: 0)
        off.put("a", entry(1))
        #expect(off.get("a") == nil)
    }
}
