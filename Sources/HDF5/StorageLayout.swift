/// How a dataset's elements lie in its file.
public enum StorageLayout: Hashable, Sendable {
    /// One block of bytes at a known offset: readable with `pread`.
    case contiguous
    /// Chunks of this shape, possibly filtered (gzip).
    case chunked(chunkShape: [Int], filtered: Bool)
    /// Stored in the object header: small datasets.
    case compact
    case virtual
}
