import Glibc

/// The few file-system calls the core needs, thin over POSIX so that listing 1,000,000 files
/// costs one `readdir` pass and no per-file `stat`.
public enum FileSystem {
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public var path: String
        public var reason: String
        public var description: String { "\(path): \(reason)" }
    }

    public enum EntryKind: Sendable { case file, directory, other }

    /// The names in a directory (no `.`/`..`), unsorted, with their kind as `readdir` reports it.
    public static func listDirectory(_ path: String) throws(Failure) -> [(name: String, kind: EntryKind)] {
        guard let directory = opendir(path) else { throw Failure(path: path, reason: errnoDescription()) }
        defer { closedir(directory) }
        var entries: [(name: String, kind: EntryKind)] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name == "." || name == ".." { continue }
            var kind: EntryKind
            switch Int32(entry.pointee.d_type) {
            case Int32(DT_REG): kind = .file
            case Int32(DT_DIR): kind = .directory
            case Int32(DT_LNK), Int32(DT_UNKNOWN): kind = self.kind(of: path + "/" + name)
            default: kind = .other
            }
            entries.append((name, kind))
        }
        return entries
    }

    /// Calls `body` with each name in a directory (no `.`/`..`) as raw bytes, without making a
    /// String of every entry: a 2,000,000-entry folder is scanned at the speed of `readdir`.
    public static func scanDirectory(
        _ path: String, _ body: (UnsafeBufferPointer<UInt8>, EntryKind) -> Void
    ) throws(Failure) {
        guard let directory = opendir(path) else { throw Failure(path: path, reason: errnoDescription()) }
        defer { closedir(directory) }
        while let entry = readdir(directory) {
            withUnsafeBytes(of: &entry.pointee.d_name) { raw in
                let bytes = raw.bindMemory(to: UInt8.self)
                let length = bytes.firstIndex(of: 0) ?? bytes.count
                let name = UnsafeBufferPointer(rebasing: bytes[0..<length])
                if length == 1 && name[0] == UInt8(ascii: ".") { return }
                if length == 2 && name[0] == UInt8(ascii: ".") && name[1] == UInt8(ascii: ".") { return }
                let kind: EntryKind
                switch Int32(entry.pointee.d_type) {
                case Int32(DT_REG): kind = .file
                case Int32(DT_DIR): kind = .directory
                case Int32(DT_LNK), Int32(DT_UNKNOWN): kind = self.kind(of: path + "/" + String(decoding: name, as: UTF8.self))
                default: kind = .other
                }
                body(name, kind)
            }
        }
    }

    /// What is at `path` after following links, or `.other` when nothing is there.
    public static func kind(of path: String) -> EntryKind {
        var info = stat()
        guard stat(path, &info) == 0 else { return .other }
        switch info.st_mode & S_IFMT {
        case S_IFREG: return .file
        case S_IFDIR: return .directory
        default: return .other
        }
    }

    public static func exists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }

    /// A whole file's bytes (configs, manifests, token files).
    public static func readFile(_ path: String) throws(Failure) -> [UInt8] {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw Failure(path: path, reason: errnoDescription()) }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw Failure(path: path, reason: errnoDescription())
            }
            if count == 0 { return bytes }
            bytes.append(contentsOf: chunk[0..<count])
        }
    }

    /// Writes a whole file, replacing it.
    public static func writeFile(_ path: String, _ bytes: [UInt8]) throws(Failure) {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw Failure(path: path, reason: errnoDescription()) }
        defer { close(descriptor) }
        var written = 0
        while written < bytes.count {
            let count = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress! + written, $0.count - written) }
            if count < 0 {
                if errno == EINTR { continue }
                throw Failure(path: path, reason: errnoDescription())
            }
            written += count
        }
    }

    /// Creates a directory and its parents.
    public static func createDirectory(_ path: String) throws(Failure) {
        var prefix = ""
        for component in Paths.normalize(path).split(separator: "/") {
            prefix += "/" + component
            if mkdir(prefix, 0o755) != 0 && errno != EEXIST {
                throw Failure(path: prefix, reason: errnoDescription())
            }
        }
    }

    /// Paths matching a shell glob, sorted.
    public static func glob(_ pattern: String) -> [String] {
        var result = glob_t()
        defer { globfree(&result) }
        guard Glibc.glob(pattern, 0, nil, &result) == 0 else { return [] }
        var paths: [String] = []
        for index in 0..<Int(result.gl_pathc) {
            if let path = result.gl_pathv[index] { paths.append(String(cString: path)) }
        }
        return paths.sorted()
    }

    static func errnoDescription() -> String {
        String(cString: strerror(errno))
    }
}
