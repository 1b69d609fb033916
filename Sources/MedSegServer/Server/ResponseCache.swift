public import HTTPTypes
public import NIOCore
import Synchronization

/// The in-memory cache (`server.cache_bytes`) of finished tensor responses, shared by every client:
/// the encoded body (npy, raw or npz) and its headers, keyed by the response's full content key
/// (`ContentKey.text`: the request and every file's version, so no two responses share a key).
/// A hit costs a lookup and no copy (ByteBuffers share storage), so a second epoch is served from
/// memory. Least recently used entries go first; an entry over an eighth of the budget is not
/// kept, so one large volume cannot flush everything else.
public final class ResponseCache: Sendable {
    public struct Entry: Sendable {
        public var headers: HTTPFields
        public var body: ByteBuffer

        public init(headers: HTTPFields, body: ByteBuffer) {
            self.headers = headers
            self.body = body
        }
    }

    public struct Statistics: Sendable, Equatable {
        public var hits = 0
        public var misses = 0
        public var bytes = 0
        public var entries = 0
        public var evictions = 0
    }

    private final class Node {
        let key: String
        var entry: Entry
        var newer: Node?
        weak var older: Node?

        init(key: String, entry: Entry) {
            self.key = key
            self.entry = entry
        }
    }

    private struct State {
        var nodes: [String: Node] = [:]
        /// Most recently used; `oldest` is evicted first.
        var newest: Node?
        var oldest: Node?
        var statistics = Statistics()
    }

    public let budget: Int
    private let state = Mutex(State())

    public init(budget: Int) {
        self.budget = budget
    }

    public var statistics: Statistics { state.withLock { $0.statistics } }

    public func get(_ key: String) -> Entry? {
        guard budget > 0 else { return nil }
        return state.withLock { state in
            guard let node = state.nodes[key] else {
                state.statistics.misses += 1
                return nil
            }
            state.statistics.hits += 1
            Self.unlink(node, &state)
            Self.pushNewest(node, &state)
            return node.entry
        }
    }

    public func put(_ key: String, _ entry: Entry) {
        // Keys name every file a response read (a scan's can be tens of kilobytes): they count too.
        let size = entry.body.readableBytes + key.utf8.count
        guard budget > 0, size <= budget / 8 else { return }
        state.withLock { state in
            if let existing = state.nodes[key] {
                state.statistics.bytes -= existing.entry.body.readableBytes + key.utf8.count
                existing.entry = entry
                state.statistics.bytes += size
                Self.unlink(existing, &state)
                Self.pushNewest(existing, &state)
                return
            }
            let node = Node(key: key, entry: entry)
            state.nodes[key] = node
            state.statistics.bytes += size
            Self.pushNewest(node, &state)
            while state.statistics.bytes > budget, let victim = state.oldest {
                Self.unlink(victim, &state)
                state.nodes[victim.key] = nil
                state.statistics.bytes -= victim.entry.body.readableBytes + victim.key.utf8.count
                state.statistics.evictions += 1
            }
            state.statistics.entries = state.nodes.count
        }
    }

    private static func unlink(_ node: Node, _ state: inout State) {
        if let newer = node.newer { newer.older = node.older } else { state.newest = node.older }
        if let older = node.older { older.newer = node.newer } else { state.oldest = node.newer }
        node.newer = nil
        node.older = nil
    }

    private static func pushNewest(_ node: Node, _ state: inout State) {
        node.older = state.newest
        state.newest?.newer = node
        state.newest = node
        if state.oldest == nil { state.oldest = node }
    }
}
