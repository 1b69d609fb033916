import Glibc

/// The folders (or, for a single-file dataset, the file) a dataset may read from, with every
/// symbolic link resolved. A file is opened only when its resolved path lies inside them, and is
/// checked again through its open descriptor (`/proc/self/fd`), so a link swapped in between
/// cannot lead a read outside: a symlink in a data folder, or a manifest path that later becomes
/// one, never serves another file.
public struct DataRoots: Sendable, Hashable {
    public let paths: [String]
    /// The locations as configured (normalized, links not resolved): what file names in the
    /// catalog start with.
    public let locations: [String]

    /// `locations` as configured; each is resolved now (a missing one is kept as written, so that
    /// nothing under it resolves inside until it exists).
    public init(_ locations: [String]) {
        self.locations = locations.map(Paths.normalize)
        paths = locations.map { Paths.realPath($0) ?? Paths.normalize($0) }
    }

    /// `path` as replicas with the same configuration over copies of the same files name it:
    /// relative to the root it lies in (`#1/train/x.im`: the second root), whatever folder each
    /// replica mounts the data at. A path outside every root keeps its base name only.
    public func shareableName(of path: String) -> String {
        for (index, root) in locations.enumerated() {
            if path == root { return "#\(index)" }
            if root == "/" && path.hasPrefix("/") { return "#\(index)\(path)" }
            if path.hasPrefix(root + "/") { return "#\(index)" + path.dropFirst(root.count) }
        }
        return "?" + Paths.fileName(of: path)
    }

    /// Whether the file at `path`, links followed, lies inside the roots. A path that does not
    /// resolve (a missing file) passes: opening it fails on its own, and whatever appears there
    /// before the open is checked again through its descriptor.
    public func contain(_ path: String) -> Bool {
        guard let resolved = Paths.realPath(path) else { return true }
        return contain(resolved: resolved)
    }

    /// Whether the file open as `descriptor` lies inside the roots.
    public func contain(descriptor: Int32) -> Bool {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let length = readlink("/proc/self/fd/\(descriptor)", &buffer, buffer.count - 1)
        guard length > 0 else { return false }
        return contain(resolved: String(decoding: buffer.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }

    private func contain(resolved: String) -> Bool {
        paths.contains { root in root == "/" || resolved == root || resolved.hasPrefix(root + "/") }
    }
}
