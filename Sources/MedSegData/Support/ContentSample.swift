import Glibc
import Synchronization

/// A cheap fingerprint of a file's bytes, for ETags that replicas share: size and modification
/// time alone do not change when two files of one shape, unpacked from one archive (same size,
/// same mtime), are swapped by `mv`. The CRC-32 of its first and last 16 KiB and of 8 blocks of
/// 4 KiB spread between them (64 KiB read at most), computed once per file version (cached by
/// its full identity). A file that differs only between the sampled blocks keeps its tag.
public enum ContentSample {
    static let edgeBytes = 16 << 10
    static let blockBytes = 4 << 10
    static let innerBlocks = 8
    /// File versions remembered; past this the cache starts again (each entry ~200 bytes).
    static let capacity = 1 << 16

    private static let cache = Mutex<[String: (identity: FileIdentity, sample: String)]>([:])

    /// The sample of the file at `path` if it is still version `identity` and lies inside
    /// `roots`; nil otherwise (the caller names the file by its identity alone then).
    public static func of(_ path: String, identity: FileIdentity, roots: DataRoots) -> String? {
        if let hit = cache.withLock({ $0[path] }), hit.identity == identity { return hit.sample }
        let descriptor = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        // Files outside the dataset's folders are never read, not even a sample of them.
        guard roots.contain(descriptor: descriptor), FileIdentity.of(descriptor: descriptor) == identity else { return nil }
        var crc = CRC32()
        var buffer = [UInt8](repeating: 0, count: edgeBytes)
        for (offset, length) in ranges(size: identity.size) {
            let read = buffer.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, length, off_t(offset)) }
            guard read == length else { return nil }
            buffer.withUnsafeBytes { crc.update(UnsafeRawBufferPointer(rebasing: $0[..<length])) }
        }
        let sample = String(crc.value, radix: 16)
        cache.withLock { cache in
            if cache.count >= capacity { cache.removeAll(keepingCapacity: true) }
            cache[path] = (identity, sample)
        }
        return sample
    }

    /// The byte ranges sampled in a file of `size` bytes: all of it when small.
    static func ranges(size: Int) -> [(offset: Int, length: Int)] {
        let sampled = 2 * edgeBytes + innerBlocks * blockBytes
        guard size > sampled else {
            return stride(from: 0, to: size, by: edgeBytes).map { ($0, min(edgeBytes, size - $0)) }
        }
        var ranges = [(0, edgeBytes)]
        let inner = size - 2 * edgeBytes - blockBytes
        for block in 1...innerBlocks {
            ranges.append((edgeBytes + inner / (innerBlocks + 1) * block, blockBytes))
        }
        ranges.append((size - edgeBytes, edgeBytes))
        return ranges
    }
}
