/// Everything a tensor response's bytes depend on, as text: the request's canonical form (route,
/// dataset, format, target, options with categories resolved, encoding) and the identity of every
/// file read. It keys the response cache whole (no hash, so no collision can serve another
/// request's bytes) and the ETag is derived from it. A reload that changes what a request means
/// (categories, the files of an item) changes the key; nothing counts reloads, so replicas with
/// the same configuration and files agree on keys and ETags.
public struct ContentKey: Hashable, Sendable {
    /// Bumped whenever the bytes medsegd sends for the same request and files would change.
    static let encodingVersion = "2"

    public let request: String
    /// Every file, in the order the request reads them, with its identity (nil: missing).
    public let files: [FileVersion]
    /// The full text: the cache key, and what the ETag hashes. Built once: a scan's names every
    /// slice file, and each response uses it for its ETag, its cache lookup and its cache entry.
    public let text: String

    public struct FileVersion: Hashable, Sendable {
        public var path: String
        public var identity: FileIdentity?
    }

    /// The key for `request` over `files` as they are now (stat).
    public init(request: String, files: [String]) {
        self.init(request: request, versions: files.map { FileVersion(path: $0, identity: FileIdentity.of($0)) })
    }

    private init(request: String, versions: [FileVersion]) {
        self.request = request
        self.files = versions
        var text = "v\(Self.encodingVersion)\n\(request)"
        for file in versions {
            text += "\n\(file.path)\t\(file.identity?.description ?? "missing")"
        }
        self.text = text
    }

    /// The same key with the identities of the versions actually opened: a file replaced between
    /// `stat` and `open` is named by the version whose bytes are sent.
    public func opened(_ opened: [String: FileIdentity]) -> ContentKey {
        guard files.contains(where: { file in opened[file.path].map { $0 != file.identity } ?? false }) else { return self }
        return ContentKey(request: request, versions: files.map { FileVersion(path: $0.path, identity: opened[$0.path] ?? $0.identity) })
    }
}
