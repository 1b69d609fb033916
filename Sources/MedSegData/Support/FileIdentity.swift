import Glibc

/// What identifies one version of a file: device, inode, size, and modification and status-change
/// times. A file replaced or rewritten gets another identity (ctime moves even when a writer
/// restores mtime), so anything derived from it can be reused safely while its identity stands
/// (ETags, cached bodies, cached byte offsets).
public struct FileIdentity: Hashable, Sendable, CustomStringConvertible {
    public var device: UInt64
    public var inode: UInt64
    public var size: Int
    public var modifiedSeconds: Int
    public var modifiedNanoseconds: Int
    public var changedSeconds: Int
    public var changedNanoseconds: Int

    /// The identity of the file at `path` now, or nil when it cannot be stat'ed.
    public static func of(_ path: String) -> FileIdentity? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return FileIdentity(info)
    }

    /// The identity of an open file: what is actually read, whatever the path names by now.
    public static func of(descriptor: Int32) -> FileIdentity? {
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { return nil }
        return FileIdentity(info)
    }

    private init(_ info: stat) {
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
        size = Int(info.st_size)
        modifiedSeconds = Int(info.st_mtim.tv_sec)
        modifiedNanoseconds = Int(info.st_mtim.tv_nsec)
        changedSeconds = Int(info.st_ctim.tv_sec)
        changedNanoseconds = Int(info.st_ctim.tv_nsec)
    }

    /// What copies of the file on other machines share with this one (`cp -p` and `rsync -a`
    /// keep both): size and modification time, as nginx's ETags use them. Device, inode and
    /// change time differ between copies.
    public var shareableDescription: String {
        "\(size):\(modifiedSeconds).\(modifiedNanoseconds)"
    }

    public var description: String {
        "\(device):\(inode):\(size):\(modifiedSeconds).\(modifiedNanoseconds):\(changedSeconds).\(changedNanoseconds)"
    }
}
