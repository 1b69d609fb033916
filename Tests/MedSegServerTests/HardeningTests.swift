import HTTPTypes
import Logging
import MedSegData
import TestSupport
import Testing

@testable import MedSegServer

/// Issue 10's smaller findings, each at the unit that decides it.
@Suite("Hardening: query decoding, token comparison, load order")
struct HardeningTests {
    @Test("data that cannot be served now (a file's safety check could not be made) is 503 with Retry-After")
    func unavailableData() {
        let error = APIError(TensorError(.unavailable, "item 3 (a.h5) cannot be opened now: ask again"))
        #expect(error.status == .serviceUnavailable && error.code == .notReady)
        #expect(error.headers[.retryAfter] == "5")
    }

    @Test("query strings decode as forms: + is a space, then %XX; unknown, repeated or bad parameters are 400s")
    func queryStrings() throws {
        let query = try QueryParameters("categories=%5B0%2C+%5B1%2C+2%5D%5D&region=0:4,+0:4&pretty", known: ["categories", "region", "pretty"])
        #expect(query["categories"] == "[0, [1, 2]]")
        #expect(query["region"] == "0:4, 0:4")
        #expect(query["pretty"] == "")
        #expect(try query.pretty)
        #expect(try QueryParameters(nil, known: [])["x"] == nil)
        #expect(try QueryParameters("&&a=1&", known: ["a"])["a"] == "1")
        for (text, message) in [
            ("categores=[0]", "unknown query parameter 'categores'; this route knows categories, region"),
            ("region=1&region=2", "query parameter 'region' is given more than once"),
            ("region=%zz", "query parameter 'region' is not valid percent-encoded UTF-8"),
            ("region=%ff", "query parameter 'region' is not valid percent-encoded UTF-8"),
            ("%=1", "not valid percent-encoded UTF-8"),
        ] {
            let error = #expect(throws: APIError.self) { try QueryParameters(text, known: ["categories", "region"]) }
            #expect(error?.code == .badRequest)
            #expect(error?.message.contains(message) == true, "\(text): \(String(describing: error))")
        }
        #expect(throws: APIError.self) { try QueryParameters("limit=9223372036854775808", known: ["limit"]).integer("limit") }
        #expect(try QueryParameters("limit=9223372036854775807", known: ["limit"]).integer("limit") == Int.max)
    }

    @Test("tokens compare exactly: no prefix, suffix, NUL padding or other length passes")
    func tokens() {
        let store = TokenStore()
        #expect(store.accepts(Array("anything".utf8)))  // no tokens configured
        store.replace(with: [Array("s3cret".utf8), Array("other-token".utf8)])
        #expect(store.accepts(Array("s3cret".utf8)))
        #expect(store.accepts(Array("other-token".utf8)))
        for candidate in ["s3cre", "s3cretX", "s3cret\0", "s3cret" + String(repeating: "\0", count: 256), "", "S3CRET", "other-toke"] {
            #expect(!store.accepts(Array(candidate.utf8)), "\(candidate.debugDescription)")
        }
        // A length difference of exactly 256 once folded to zero in one byte.
        #expect(!store.accepts(Array("s3cret".utf8) + [UInt8](repeating: 0, count: 256)))
    }

    @Test("a load that started later wins, whatever order the loads finish in")
    func loadOrder() throws {
        let folder = TemporaryDirectory()
        try Fixtures.writeSlice(in: folder.folder("a"), "0000001_V00-Aug00_001")
        folder.write("one.yaml", Fixtures.config(datasets: ["first: {format: slices-2d, scan_root: a}"]))
        folder.write("two.yaml", Fixtures.config(datasets: ["second: {format: slices-2d, scan_root: a}"]))
        let store = CatalogStore()
        let initial = store.beginLoad()  // the first load at start
        let reload = store.beginLoad()  // a SIGHUP while it runs
        let reloaded = CatalogLoader.load(try ConfigLoader.load(path: folder.path + "/two.yaml"), logger: .init(label: "test"))
        let first = CatalogLoader.load(try ConfigLoader.load(path: folder.path + "/one.yaml"), logger: .init(label: "test"))
        #expect(store.install(reloaded, loadedBy: reload))
        #expect(!store.install(first, loadedBy: initial))  // finished last, started first: dropped
        #expect(store.catalog?.names == ["second"])
        #expect(store.install(first, loadedBy: store.beginLoad()))
        #expect(store.catalog?.names == ["first"])
    }

    @Test("reloads apply the live limits and name the keys that need a restart")
    func reloadSettings() {
        var running = ServerSettings()
        running.port = 8080
        var next = running
        next.maxBatchItems = 8
        next.maxResponseBytes = ByteSize(bytes: 1 << 20)
        next.maxBodyBytes = ByteSize(bytes: 4096)
        next.accessLog = false
        next.port = 9090
        next.cacheBytes = ByteSize(bytes: 0)
        let applied = running.applyingReloadableKeys(from: next)
        #expect(
            applied.maxBatchItems == 8 && applied.maxResponseBytes == next.maxResponseBytes && applied.maxBodyBytes == next.maxBodyBytes
                && !applied.accessLog)
        #expect(applied.port == 8080 && applied.cacheBytes == running.cacheBytes)
        #expect(running.keysNeedingRestart(toBecome: next) == ["port", "cache_bytes"])
    }

    @Test("a channel repeated within a class is refused; classes may share channels")
    func repeatedChannels() throws {
        let error = #expect(throws: CategorySelection.ParseError.self) { try CategorySelection(json: "[0, [1, 2, 1]]") }
        #expect(error?.message == "categories: class 1 lists channel 1 twice")
        #expect(try CategorySelection(json: "[[0, 1], [1, 2], 1]").ids.count == 3)
    }

    @Test("content keys name the versions actually opened, and resolve default categories")
    func contentKeys() throws {
        let folder = TemporaryDirectory()
        folder.write("a", "one")
        let path = folder.path + "/a"
        let key = ContentKey(request: "r", files: [path, folder.path + "/missing"], roots: DataRoots([folder.path]))
        #expect(key.opened([:]) == key)
        #expect(key.opened([path: try #require(FileIdentity.of(path))]) == key)
        folder.write("a", "a longer second version")
        let replaced = try #require(FileIdentity.of(path))
        let opened = key.opened([path: replaced])
        #expect(opened != key && opened == ContentKey(request: "r", files: [path, folder.path + "/missing"], roots: DataRoots([folder.path])))
        #expect(ETag.of(opened) != ETag.of(key) && ETag.of(key).count == 34)
        let options = TensorOptions()
        #expect(options.canonical(defaultCategories: [.single(0), .collated([1, 2])]) != options.canonical(defaultCategories: [.single(3)]))
    }

    @Test("response memory: a reservation past the budget waits until bytes are given back, first come first served")
    func responseMemory() async throws {
        let memory = ResponseMemory(budget: 100)
        var first: ResponseMemory.Reservation? = try await memory.reserve(70)
        #expect(memory.held == 70)
        let waiting = Task { try await memory.reserve(50).bytes }
        #expect(try await Self.eventually { Self.queued(memory) }, "the second reservation waits in the queue")
        #expect(memory.held == 70, "the second reservation waits")
        first = nil
        #expect(try await waiting.value == 50)
        #expect(try await Self.eventually { memory.held == 0 }, "every reservation is given back when it goes")
        #expect(try await memory.reserve(1000).bytes == 100, "a body larger than the budget takes all of it")
        _ = first
    }

    @Test("response memory: a cancelled wait leaves the queue at once, and those behind it go on")
    func responseMemoryCancellation() async throws {
        let memory = ResponseMemory(budget: 100)
        var first: ResponseMemory.Reservation? = try await memory.reserve(60)
        // A large request waits at the head of the queue; a small one waits behind it.
        let large = Task { try await memory.reserve(100) }
        // The small one is asked for only once the large one waits (a loaded machine may not
        // have run its task yet): then it queues behind it.
        #expect(try await Self.eventually { Self.queued(memory) }, "the large reservation waits in the queue")
        let small = Task { try await memory.reserve(30).bytes }
        try await Task.sleep(for: .milliseconds(50))
        #expect(memory.held == 60, "both wait: the small one may not overtake the large one")
        large.cancel()
        let outcome = await large.result
        #expect(throws: CancellationError.self) { try outcome.get() }
        #expect(try await small.value == 30, "the small one goes once the large one left the queue")
        first = nil
        #expect(try await Self.eventually { memory.held == 0 }, "the cancelled wait holds nothing")
        _ = first
    }

    /// Whether a reservation waits in `memory`'s queue: then even 0 bytes are not granted at once.
    static func queued(_ memory: ResponseMemory) -> Bool {
        memory.tryReserve(0) == nil
    }

    /// Polls `condition` (every 5 ms, for up to 10 s: a loaded machine runs tasks late).
    static func eventually(_ condition: () -> Bool) async throws -> Bool {
        for _ in 0..<2000 {
            if condition() { return true }
            try await Task.sleep(for: .milliseconds(5))
        }
        return condition()
    }
}
