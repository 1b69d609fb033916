/// Everything a tensor response's bytes depend on, as text: the request's canonical form (route,
/// dataset, format, target, options with categories resolved, encoding) and the version of every
/// file read. `text` keys the response cache whole (no hash, so no collision can serve another
/// request's bytes): it names files by path and full identity (device, inode, change time), so a
/// file rewritten in place is never served from the cache. `sharedText` is what the ETag hashes:
/// files by their place under the dataset's roots, size, modification time and a sample of their
/// bytes, which copies on other replicas share, so `If-None-Match` works behind a load balancer. A reload that changes
/// what a request means (categories, the files of an item) changes both; nothing counts reloads.
public struct ContentKey: Hashable, Sendable {
    /// Bumped whenever the bytes medsegd sends for the same request and files would change.
    static let encodingVersion = "3"

    public let request: String
    /// Every file, in the order the request reads them, with its identity (nil: missing).
    public let files: [FileVersion]
    /// The cache key. Built once: a scan's names every slice file, and each response uses it
    /// for its cache lookup and its cache entry.
    public let text: String
    /// What the ETag hashes: the same as `text` with files named as every replica names them.
    public let sharedText: String
    private let roots: DataRoots

    public struct FileVersion: Hashable, Sendable {
        public var path: String
        public var identity: FileIdentity?
    }

    /// The key for `request` over `files` (of a dataset with `roots`) as they are now (stat).
    public init(request: String, files: [String], roots: DataRoots) {
        self.init(request: request, versions: files.map { FileVersion(path: $0, identity: FileIdentity.of($0)) }, roots: roots)
    }

    private init(request: String, versions: [FileVersion], roots: DataRoots) {
        self.request = request
        self.files = versions
        self.roots = roots
        var text = "v\(Self.encodingVersion)\n\(request)"
        var sharedText = text
        for file in versions {
            text += "\n\(file.path)\t\(file.identity?.description ?? "missing")"
            sharedText +=
                "\n\(roots.shareableName(of: file.path))\t\(file.identity.map { Self.shared($0, path: file.path, roots: roots) } ?? "missing")"
        }
        self.text = text
        self.sharedText = sharedText
    }

    /// A file version as replicas with copies of it name it: size, modification time and a
    /// sample of its bytes (`ContentSample`; without it, when the file cannot be sampled now,
    /// its full identity, which no replica shares: a tag that only misses a cache).
    private static func shared(_ identity: FileIdentity, path: String, roots: DataRoots) -> String {
        guard let sample = ContentSample.of(path, identity: identity, roots: roots) else { return identity.description }
        return identity.shareableDescription + ":" + sample
    }

    /// The same key with the identities of the versions actually opened: a file replaced between
    /// `stat` and `open` is named by the version whose bytes are sent.
    public func opened(_ opened: [String: FileIdentity]) -> ContentKey {
        guard files.contains(where: { file in opened[file.path].map { $0 != file.identity } ?? false }) else { return self }
        return ContentKey(
            request: request, versions: files.map { FileVersion(path: $0.path, identity: opened[$0.path] ?? $0.identity) }, roots: roots)
    }
}
