import Glibc

/// Lexical path arithmetic: configs resolve relative paths against their own folder, and
/// containment checks must not be fooled by `..`.
public enum Paths {
    /// `path` made absolute against `directory` (when relative) and normalized.
    public static func resolve(_ path: String, against directory: String) -> String {
        normalize(path.hasPrefix("/") ? path : directory + "/" + path)
    }

    /// Removes `.`, `..` and repeated slashes; `..` never climbs above `/`.
    public static func normalize(_ path: String) -> String {
        var components: [Substring] = []
        for component in path.split(separator: "/", omittingEmptySubsequences: true) {
            switch component {
            case ".": continue
            case "..": if !components.isEmpty { components.removeLast() }
            default: components.append(component)
            }
        }
        return "/" + components.joined(separator: "/")
    }

    /// The folder holding `path` (normalized).
    public static func directory(of path: String) -> String {
        let normalized = normalize(path)
        guard let slash = normalized.lastIndex(of: "/"), slash != normalized.startIndex else { return "/" }
        return String(normalized[..<slash])
    }

    /// The last component of `path`.
    public static func fileName(of path: String) -> String {
        String(path.split(separator: "/").last ?? "")
    }

    /// Whether `path` lies inside `root` (or is `root`), lexically, and also after following
    /// symbolic links where both exist.
    public static func isInside(_ path: String, root: String) -> Bool {
        guard lexicallyInside(normalize(path), root: normalize(root)) else { return false }
        guard let resolvedPath = realPath(path), let resolvedRoot = realPath(root) else { return true }
        return lexicallyInside(resolvedPath, root: resolvedRoot)
    }

    private static func lexicallyInside(_ path: String, root: String) -> Bool {
        root == "/" || path == root || path.hasPrefix(root + "/")
    }

    /// The canonical path with links resolved, or `nil` when it does not exist.
    public static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// Absolute path of the working directory.
    public static var currentDirectory: String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buffer, buffer.count) != nil else { return "/" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
