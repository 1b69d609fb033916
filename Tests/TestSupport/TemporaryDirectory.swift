import Glibc
import MedSegData

/// A fresh folder under /tmp, removed with everything in it when released.
public final class TemporaryDirectory: @unchecked Sendable {
    public let path: String

    public init(_ prefix: String = "medsegd-test") {
        var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
        let created = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(created != nil, "mkdtemp failed")
        path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    deinit {
        Self.remove(path)
    }

    /// `path/relative`, with its parent folders created.
    public func file(_ relative: String) -> String {
        let full = path + "/" + relative
        try? FileSystem.createDirectory(Paths.directory(of: full))
        return full
    }

    public func folder(_ relative: String) -> String {
        let full = path + "/" + relative
        try? FileSystem.createDirectory(full)
        return full
    }

    /// Writes a text file and returns its path.
    @discardableResult
    public func write(_ relative: String, _ text: String) -> String {
        let full = file(relative)
        try! FileSystem.writeFile(full, Array(text.utf8))
        return full
    }

    private static func remove(_ path: String) {
        if let entries = try? FileSystem.listDirectory(path) {
            for entry in entries {
                let child = path + "/" + entry.name
                if entry.kind == .directory { remove(child) } else { unlink(child) }
            }
        }
        rmdir(path)
    }
}
