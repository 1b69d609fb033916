internal import HDF5
import Synchronization

/// Where a dataset's bytes lie in its file, learned once through HDF5 and then used to read with
/// `pread` alone. Only layouts whose bytes can be reproduced exactly are mapped: contiguous
/// storage, and chunks that are unfiltered or deflate-compressed (optionally shuffled).
struct StorageMap: Sendable {
    enum Layout: Sendable {
        case contiguous(offset: UInt64)
        case chunked(Chunks)
    }

    struct Chunks: Sendable {
        var shape: [Int]
        /// Per chunk, by linear index over the chunk grid; nil: never written (reads as zeros).
        var locations: [HDF5Dataset.ChunkLocation?]
        /// The pipeline's filter ids, in order (only shuffle = 2 and deflate = 1 are mapped).
        var filters: [Int]

        /// Chunks per axis.
        func grid(for shape: [Int]) -> [Int] {
            zip(shape, self.shape).map { ($0 + $1 - 1) / $1 }
        }
    }

    var file: String
    var identity: FileIdentity
    var shape: [Int]
    var dtype: DType
    var layout: Layout

    static let deflate = 1
    static let shuffle = 2
    /// Chunk indexes larger than this are not mapped (learning one costs a lookup per chunk).
    static let maxChunks = 1 << 16
    /// The largest chunk medsegd decodes (and so allocates) at once, on either read path.
    static let maxChunkBytes = 256 << 20

    /// Maps `dataset`, or returns nil when only the library can read it.
    static func learn(_ dataset: HDF5Dataset, file: String, identity: FileIdentity) -> StorageMap? {
        switch dataset.layout {
        case .contiguous:
            // Offsets come from the file: they must lie inside it before any arithmetic uses them.
            guard let extent = dataset.contiguousExtent, extent.offset <= UInt64(identity.size),
                UInt64(extent.byteCount) <= UInt64(identity.size) - extent.offset
            else { return nil }
            return StorageMap(file: file, identity: identity, shape: dataset.shape, dtype: dataset.dtype, layout: .contiguous(offset: extent.offset))
        case .chunked(let chunkShape, _):
            let filters = dataset.filters
            guard filters.allSatisfy({ $0 == deflate || $0 == shuffle }), filters.filter({ $0 == shuffle }).count <= 1,
                filters.filter({ $0 == deflate }).count <= 1, !dataset.hasNonZeroFill,
                chunkShape.count == dataset.shape.count, chunkShape.allSatisfy({ $0 > 0 }),
                let chunkBytes = (chunkShape + [dataset.dtype.size]).checkedProduct, chunkBytes <= maxChunkBytes
            else { return nil }
            var chunks = Chunks(shape: chunkShape, locations: [], filters: filters)
            let grid = chunks.grid(for: dataset.shape)
            let total = grid.reduce(1, *)
            guard total <= maxChunks else { return nil }
            chunks.locations.reserveCapacity(total)
            for linear in 0..<total {
                var remainder = linear
                var offset = [Int](repeating: 0, count: grid.count)
                for axis in stride(from: grid.count - 1, through: 0, by: -1) {
                    offset[axis] = (remainder % grid[axis]) * chunkShape[axis]
                    remainder /= grid[axis]
                }
                let location: HDF5Dataset.ChunkLocation?
                do { location = try dataset.chunkLocation(at: offset) } catch { return nil }
                if let location {
                    guard location.address <= UInt64(identity.size), UInt64(location.size) <= UInt64(identity.size) - location.address else {
                        return nil
                    }
                }
                chunks.locations.append(location)
            }
            return StorageMap(file: file, identity: identity, shape: dataset.shape, dtype: dataset.dtype, layout: .chunked(chunks))
        default:
            return nil
        }
    }
}

/// Storage maps of recently read datasets, shared by all requests: a file read once is read
/// again without opening HDF5 at all, for as long as its identity (size, mtime, inode) holds.
final class StorageMapCache: Sendable {
    static let shared = StorageMapCache()

    private struct Key: Hashable {
        var file: String
        var dataset: String
    }

    private struct State {
        var maps: [Key: StorageMap] = [:]
        var bytes = 0
    }

    private let state = Mutex(State())
    /// The memory the maps may take (a map of a finely chunked dataset holds a location per
    /// chunk); past it the cache starts over. Enough for a million ordinary slices.
    static let byteBudget = 256 << 20

    func lookup(file: String, dataset: String, identity: FileIdentity) -> StorageMap? {
        state.withLock { state in
            guard let map = state.maps[Key(file: file, dataset: dataset)], map.identity == identity else { return nil }
            return map
        }
    }

    func store(_ map: StorageMap, dataset: String) {
        state.withLock { state in
            let size = map.estimatedBytes
            if state.bytes + size > Self.byteBudget {
                state.maps.removeAll(keepingCapacity: true)
                state.bytes = 0
            }
            if let replaced = state.maps.updateValue(map, forKey: Key(file: map.file, dataset: dataset)) {
                state.bytes -= replaced.estimatedBytes
            }
            state.bytes += size
        }
    }
}

extension StorageMap {
    /// About what the map takes in memory.
    var estimatedBytes: Int {
        let locations: Int
        switch layout {
        case .contiguous: locations = 0
        case .chunked(let chunks): locations = chunks.locations.count
        }
        return 256 + file.utf8.count * 2 + shape.count * 8 + locations * MemoryLayout<HDF5Dataset.ChunkLocation?>.stride
    }
}
