internal import CZlib
import Dispatch
import Glibc
internal import HDF5
import Synchronization

/// Reads a mapped dataset with `pread` (and zlib for deflated chunks): the same bytes HDF5 would
/// give, without its global lock, so reads run on every core. Chunks are inflated in parallel.
/// Used by one request at a time; its parallel chunk reads share only the descriptor (pread is
/// thread-safe) and write disjoint parts of the output.
final class DirectArray: ArrayStore, @unchecked Sendable {
    let map: StorageMap
    private let roots: DataRoots
    private let describe: String

    var shape: [Int] { map.shape }
    var dtype: DType { map.dtype }
    var file: String { map.file }
    var identity: FileIdentity { map.identity }

    /// Checks that `map.file` is still the version the map was learned from.
    init(_ map: StorageMap, roots: DataRoots, describe: String) throws(TensorError) {
        self.map = map
        self.roots = roots
        self.describe = describe
        let descriptor = try openChecked()
        close(descriptor)
    }

    /// Opens the file and checks its identity: offsets learned from one version mean nothing in another.
    private func openChecked() throws(TensorError) -> Int32 {
        // O_NONBLOCK: a FIFO swapped in for the file must not block a pool thread (no effect on files).
        let descriptor = open(map.file, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard descriptor >= 0 else {
            throw TensorError(.unprocessable, "\(describe) cannot be opened: \(String(cString: strerror(errno)).lowercased())", file: map.file)
        }
        guard roots.contain(descriptor: descriptor) else {
            close(descriptor)
            throw TensorError.outsideRoots(describe, map.file)
        }
        guard FileIdentity.of(descriptor: descriptor) == map.identity else {
            close(descriptor)
            throw TensorError.changed(describe)
        }
        return descriptor
    }

    func read(_ selection: Hyperslab, into buffer: UnsafeMutableRawBufferPointer) throws(TensorError) {
        guard selection.fits(in: map.shape) else {
            throw TensorError(.invalidRequest, "selection \(selection) is outside shape \(map.shape)")
        }
        guard selection.elementCount > 0 else { return }
        let descriptor = try openChecked()
        defer { close(descriptor) }
        switch map.layout {
        case .contiguous(let offset): try readContiguous(selection, offset: offset, from: descriptor, into: buffer)
        case .chunked(let chunks): try readChunked(selection, chunks, from: descriptor, into: buffer)
        }
    }

    // MARK: contiguous

    private func readContiguous(
        _ selection: Hyperslab, offset: UInt64, from descriptor: Int32, into buffer: UnsafeMutableRawBufferPointer
    ) throws(TensorError) {
        let shape = map.shape
        let size = map.dtype.size
        let rank = shape.count
        if rank == 0 || isOneBlock(selection, shape) {
            let first = rank == 0 ? 0 : selection.start[0] * shape.dropFirst().reduce(1, *)
            try preadFully(descriptor, buffer.baseAddress!, selection.elementCount * size, UInt64(first * size) + offset)
            return
        }
        // Row by row of the first axis: one read spanning the rest of the selection, then a gather.
        let planeElements = shape.dropFirst().reduce(1, *)
        let inner = Array(shape.dropFirst())
        let innerSlab = Hyperslab(
            start: Array(selection.start.dropFirst()), count: Array(selection.count.dropFirst()), stride: Array(selection.stride.dropFirst()))
        let innerStrides = Self.strides(inner)
        var firstInner = 0
        var lastInner = 0
        for axis in 0..<inner.count {
            firstInner += innerSlab.start[axis] * innerStrides[axis]
            lastInner += (innerSlab.start[axis] + max(innerSlab.count[axis] - 1, 0) * innerSlab.stride[axis]) * innerStrides[axis]
        }
        let spanElements = lastInner - firstInner + 1
        let rowBytes = innerSlab.elementCount * size
        // The span between selected elements is sized by the file's shape, not by the answer:
        // when it is mostly gaps, read the runs themselves.
        guard spanElements * size <= max(4 * rowBytes, 1 << 20) else {
            try readSparse(selection, offset: offset, from: descriptor, into: buffer)
            return
        }
        var scratch = [UInt8](repeating: 0, count: spanElements * size)
        for row in 0..<selection.count[0] {
            let index = selection.start[0] + row * selection.stride[0]
            let spanOffset = offset + UInt64((index * planeElements + firstInner) * size)
            try preadFully(descriptor, into: &scratch, at: spanOffset)
            // The span is the part of the row from element `firstInner` on: a block of the row.
            scratch.withUnsafeBytes { span in
                Gather.copy(
                    span.baseAddress! - firstInner * size, blockOrigin: [Int](repeating: 0, count: inner.count), blockShape: inner,
                    selection: innerSlab, output: buffer.baseAddress! + row * rowBytes, elementSize: size)
            }
        }
    }

    /// Decoding more than this, or 64 times the bytes a read returns, is refused: a region that
    /// touches many large chunks for a few elements would hold a blocking thread for minutes.
    static let decodeFloor = 512 << 20

    static func checkDecodeBudget(chunks: Int, chunkBytes: Int, outputBytes: Int, _ describe: String) throws(TensorError) {
        let decoded = chunks.multipliedReportingOverflow(by: chunkBytes)
        let budget = max(decodeFloor, outputBytes.multipliedReportingOverflow(by: 64).overflow ? Int.max : outputBytes * 64)
        guard !decoded.overflow, decoded.partialValue <= budget else {
            throw TensorError(
                .unprocessable,
                "\(describe): this region touches \(chunks) stored chunks of \(chunkBytes) bytes to return \(outputBytes) bytes, more decoding than medsegd does for one read; ask for a denser region"
            )
        }
    }

    /// A selection whose rows are mostly gaps (large steps): each run along the last axis is read
    /// on its own, so memory and reads follow the selected bytes, not the span between them.
    private func readSparse(
        _ selection: Hyperslab, offset: UInt64, from descriptor: Int32, into buffer: UnsafeMutableRawBufferPointer
    ) throws(TensorError) {
        let shape = map.shape
        let size = map.dtype.size
        let strides = Self.strides(shape)
        let last = shape.count - 1
        let count = selection.count[last]
        let step = selection.stride[last]
        let runBytes = count * size
        // A strided run is read as one span when that span is small, else element by element.
        let spanBytes = ((count - 1) * step + 1) * size
        var span = step > 1 && spanBytes <= max(4 * runBytes, 64 << 10) ? [UInt8](repeating: 0, count: spanBytes) : []
        var counter = [Int](repeating: 0, count: shape.count)
        var output = buffer.baseAddress!
        while true {
            var element = selection.start[last]
            for axis in 0..<last { element += (selection.start[axis] + counter[axis] * selection.stride[axis]) * strides[axis] }
            let at = offset + UInt64(element * size)
            if step == 1 {
                try preadFully(descriptor, output, runBytes, at)
            } else if !span.isEmpty {
                try preadFully(descriptor, into: &span, at: at)
                span.withUnsafeBytes { bytes in
                    for k in 0..<count { (output + k * size).copyMemory(from: bytes.baseAddress! + k * step * size, byteCount: size) }
                }
            } else {
                for k in 0..<count { try preadFully(descriptor, output + k * size, size, at + UInt64(k * step * size)) }
            }
            output += runBytes
            var axis = last - 1
            while axis >= 0 {
                counter[axis] += 1
                if counter[axis] < selection.count[axis] { break }
                counter[axis] = 0
                axis -= 1
            }
            if axis < 0 { return }
        }
    }

    /// Whether the selection is one run of bytes: whole trailing axes under a unit-stride first axis.
    private func isOneBlock(_ selection: Hyperslab, _ shape: [Int]) -> Bool {
        guard selection.stride[0] == 1 || selection.count[0] == 1 else { return false }
        for axis in 1..<shape.count
        where selection.start[axis] != 0 || selection.count[axis] != shape[axis] || (selection.stride[axis] != 1 && shape[axis] > 1) {
            return false
        }
        return true
    }

    // MARK: chunked

    private func readChunked(
        _ selection: Hyperslab, _ chunks: StorageMap.Chunks, from descriptor: Int32, into buffer: UnsafeMutableRawBufferPointer
    ) throws(TensorError) {
        let shape = map.shape
        let size = map.dtype.size
        let grid = chunks.grid(for: shape)
        // Per axis: the chunk coordinates the selection touches.
        var touched: [[Int]] = []
        for axis in 0..<shape.count {
            var coordinates: [Int] = []
            for position in 0..<selection.count[axis] {
                let chunk = (selection.start[axis] + position * selection.stride[axis]) / chunks.shape[axis]
                if coordinates.last != chunk { coordinates.append(chunk) }
            }
            touched.append(coordinates)
        }
        var combinations: [[Int]] = [[]]
        for coordinates in touched { combinations = combinations.flatMap { prefix in coordinates.map { prefix + [$0] } } }
        // A chunk never written reads as zeros (maps with another fill value are not made): the
        // output starts zeroed and such chunks are skipped, costing nothing.
        buffer.initializeMemory(as: UInt8.self, repeating: 0)
        let work = combinations.filter { coordinate in chunks.locations[zip(coordinate, grid).reduce(0) { $0 * $1.1 + $1.0 }] != nil }
        let chunkBytes = chunks.shape.reduce(1, *) * size
        try Self.checkDecodeBudget(chunks: work.count, chunkBytes: chunkBytes, outputBytes: buffer.count, describe)
        let output = SendablePointer(buffer.baseAddress!)
        let failure = Mutex<TensorError?>(nil)
        let body: @Sendable (Int) -> Void = { item in
            let coordinate = work[item]
            let linear = zip(coordinate, grid).reduce(0) { $0 * $1.1 + $1.0 }
            let decoded: [UInt8]
            do throws(TensorError) {
                guard let location = chunks.locations[linear] else { return }
                decoded = try self.decode(location, chunks, bytes: chunkBytes, from: descriptor)
            } catch {
                failure.withLock { current in if current == nil { current = error } }
                return
            }
            decoded.withUnsafeBytes { source in
                Gather.copy(
                    source.baseAddress!, blockOrigin: zip(coordinate, chunks.shape).map { $0 * $1 }, blockShape: chunks.shape,
                    selection: selection, output: output.pointer, elementSize: size)
            }
        }
        if work.count > 1 {
            DispatchQueue.concurrentPerform(iterations: work.count, execute: body)
        } else if work.count == 1 {
            body(0)
        }
        if let error = failure.withLock({ $0 }) { throw error }
    }

    /// One chunk's bytes as stored in memory: read, inflated, unshuffled as its filters require.
    private func decode(
        _ location: HDF5Dataset.ChunkLocation, _ chunks: StorageMap.Chunks, bytes expected: Int, from descriptor: Int32
    ) throws(TensorError) -> [UInt8] {
        // The stored size comes from the file: deflate never grows data by more than a small
        // fraction, so a larger claim is a corrupt (or hostile) index, not a reason to allocate.
        guard location.size <= expected + expected / 8 + 4096 else {
            throw TensorError(.unprocessable, "\(describe) has a chunk that claims \(location.size) stored bytes for \(expected) bytes of data")
        }
        var data = [UInt8](repeating: 0, count: location.size)
        try preadFully(descriptor, into: &data, at: location.address)
        // Filters apply in pipeline order when writing; undo them in reverse. A set mask bit: skipped.
        for (index, filter) in chunks.filters.enumerated().reversed() where location.filterMask & (1 << UInt32(index)) == 0 {
            if filter == StorageMap.deflate {
                var length = uLongf(expected)
                var status: Int32 = Z_OK
                let inflated = [UInt8](unsafeUninitializedCapacity: expected) { target, initialized in
                    status = data.withUnsafeBytes { source in
                        uncompress(target.baseAddress!, &length, source.baseAddress!.assumingMemoryBound(to: Bytef.self), uLong(source.count))
                    }
                    initialized = status == Z_OK ? Int(length) : 0
                }
                guard status == Z_OK, Int(length) == expected else {
                    throw TensorError(.unprocessable, "\(describe) has a corrupt compressed chunk (zlib status \(status))")
                }
                data = inflated
            } else if filter == StorageMap.shuffle {
                data = Self.unshuffle(data, elementSize: map.dtype.size)
            }
        }
        guard data.count == expected else {
            throw TensorError(.unprocessable, "\(describe) has a chunk of \(data.count) bytes where \(expected) were expected")
        }
        return data
    }

    /// HDF5's shuffle stores byte k of every element together; this puts elements back.
    static func unshuffle(_ bytes: [UInt8], elementSize: Int) -> [UInt8] {
        guard elementSize > 1 else { return bytes }
        let count = bytes.count / elementSize
        var result = bytes
        for byte in 0..<elementSize {
            for element in 0..<count { result[element * elementSize + byte] = bytes[byte * count + element] }
        }
        return result
    }

    // MARK: reading

    private func preadFully(_ descriptor: Int32, into bytes: inout [UInt8], at offset: UInt64) throws(TensorError) {
        var failure: TensorError?
        bytes.withUnsafeMutableBytes { buffer in
            do throws(TensorError) { try preadFully(descriptor, buffer.baseAddress!, buffer.count, offset) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    private func preadFully(_ descriptor: Int32, _ target: UnsafeMutableRawPointer, _ count: Int, _ offset: UInt64) throws(TensorError) {
        // Offsets come from the file's metadata: one past off_t's range is a corrupt file, not a trap.
        guard let start = Int64(exactly: offset), start <= Int64.max - Int64(count) else {
            throw TensorError(.unprocessable, "\(describe) points at data beyond any file's end")
        }
        var done = 0
        while done < count {
            let got = pread(descriptor, target + done, count - done, off_t(start) + off_t(done))
            if got < 0 {
                if errno == EINTR { continue }
                throw TensorError(.unprocessable, "\(describe) cannot be read: \(String(cString: strerror(errno)).lowercased())")
            }
            if got == 0 { throw TensorError(.unprocessable, "\(describe) is truncated: its data ends before the file's header says") }
            done += got
        }
    }

    /// A raw pointer handed to parallel workers that write disjoint parts of one buffer.
    struct SendablePointer: @unchecked Sendable {
        let pointer: UnsafeMutableRawPointer
        init(_ pointer: UnsafeMutableRawPointer) { self.pointer = pointer }
    }

    static func strides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        for axis in stride(from: shape.count - 2, through: 0, by: -1) { strides[axis] = strides[axis + 1] * shape[axis + 1] }
        return strides
    }
}
