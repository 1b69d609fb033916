import HDF5

/// An array ready to be read, in pieces that follow each other in C order: what a response
/// streams. Creating one opens and checks the files (so most errors come before any byte is
/// sent); reading a chunk reads only that part.
///
/// Sources hold open HDF5 handles. A source is used by one request at a time and must be
/// created, read and closed on blocking threads, never on an event loop.
public protocol TensorSource: AnyObject, Sendable {
    /// The array the chunks add up to.
    var layout: TensorLayout { get }
    /// Bytes read from storage to produce it: more than `layout.byteCount` for a collated mask
    /// (every stored channel is read), and counted against the response limit too.
    var readByteCount: Int { get }
    /// The files it reads and the version of each it was opened on (reads fail if that changes).
    var openedFiles: [String: FileIdentity] { get }
    var chunkCount: Int { get }
    /// How many bytes chunk `index` holds.
    func chunkByteCount(_ index: Int) -> Int
    /// Writes chunk `index` (in `layout.dtype`) into `buffer`, which holds exactly
    /// `chunkByteCount(index)` bytes: straight into a response body, with no copy in between.
    func readChunk(_ index: Int, into buffer: UnsafeMutableRawBufferPointer) throws(TensorError)
    /// Releases the HDF5 handles.
    func close()
}

extension TensorSource {
    /// Chunk `index` in a new array.
    public func readChunk(_ index: Int) throws(TensorError) -> [UInt8] {
        try UnsafeFill.array(count: chunkByteCount(index)) { (buffer) throws(TensorError) in try readChunk(index, into: buffer) }
    }

    /// The whole array in memory (small arrays: items, tests).
    public func readAll() throws(TensorError) -> Tensor {
        let bytes = try UnsafeFill.array(count: layout.byteCount) { (buffer) throws(TensorError) in
            var offset = 0
            for chunk in 0..<chunkCount {
                let count = chunkByteCount(chunk)
                try readChunk(chunk, into: UnsafeMutableRawBufferPointer(rebasing: buffer[offset..<(offset + count)]))
                offset += count
            }
        }
        return Tensor(dtype: layout.dtype, shape: layout.shape, bytes: bytes)
    }
}

/// Arrays filled by a throwing writer, without zeroing them first.
enum UnsafeFill {
    static func array(count: Int, _ fill: (UnsafeMutableRawBufferPointer) throws(TensorError) -> Void) throws(TensorError) -> [UInt8] {
        var failure: TensorError?
        let bytes = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            do throws(TensorError) {
                try fill(UnsafeMutableRawBufferPointer(buffer))
            } catch {
                failure = error
                buffer.initialize(repeating: 0)
            }
            initialized = count
        }
        if let failure { throw failure }
        return bytes
    }
}

/// Splits a selection along one axis into row ranges of about `targetBytes` each.
struct RowChunking: Sendable {
    /// The axis split, or nil when the selection is read in one piece.
    let axis: Int?
    let rows: Int
    let rowsPerChunk: Int

    static let targetBytes = 4 << 20

    /// `counts`: elements selected per axis; `splittable`: how many leading axes may be split.
    init(counts: [Int], splittable: Int, bytesPerElement: Int) {
        // An empty selection is one empty chunk, however long its other axes are (a file may
        // declare (0, 5, 390842023940): split by rows, that was 390,842 empty reads).
        let axis = counts.contains(0) ? nil : counts.prefix(splittable).firstIndex { $0 > 1 }
        self.axis = axis
        guard let axis else {
            rows = 1
            rowsPerChunk = 1
            return
        }
        rows = counts[axis]
        let rowBytes = max(1, (counts[(axis + 1)...] + [bytesPerElement]).checkedProduct ?? Int.max)
        rowsPerChunk = max(1, min(rows, Self.targetBytes / rowBytes))
    }

    var chunkCount: Int { (rows + rowsPerChunk - 1) / rowsPerChunk }

    /// The share of `totalBytes` that chunk `chunk` holds (every row holds as many bytes).
    func byteCount(_ chunk: Int, of totalBytes: Int) -> Int {
        totalBytes / rows * rowRange(chunk).count
    }

    func rowRange(_ chunk: Int) -> Range<Int> {
        let start = chunk * rowsPerChunk
        return start..<min(rows, start + rowsPerChunk)
    }

    /// The part of `slab` that chunk `chunk` covers.
    func subslab(_ slab: Hyperslab, chunk: Int) -> Hyperslab {
        guard let axis else { return slab }
        let range = rowRange(chunk)
        var sub = slab
        sub.start[axis] = slab.start[axis] + range.lowerBound * slab.stride[axis]
        sub.count[axis] = range.count
        return sub
    }
}
