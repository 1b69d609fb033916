internal import HDF5

/// A stored array that can fill a buffer with any hyperslab of itself, as stored (no conversion).
/// Two kinds: the HDF5 library itself, and `DirectArray`, which reads the same bytes with
/// `pread` (and zlib) where the layout allows, outside HDF5's global lock.
///
/// Neither holds a file open between reads: a request that opens many arrays (a batch, a scan)
/// holds no descriptors while it waits for its client. Every read opens the file again and
/// checks that it is still the version (`identity`) whose shape and layout were learned, so the
/// bytes always belong to the version an ETag names.
protocol ArrayStore: AnyObject, Sendable {
    var shape: [Int] { get }
    var dtype: DType { get }
    /// The file and the version of it this array was learned from.
    var file: String { get }
    var identity: FileIdentity { get }
    /// Reads the selection in C order into `buffer` (exactly `selection.elementCount * dtype.size` bytes).
    func read(_ selection: Hyperslab, into buffer: UnsafeMutableRawBufferPointer) throws(TensorError)
}

extension ArrayStore {
    /// The selection in a new array (not zero-filled first: every byte is written).
    func readBytes(_ selection: Hyperslab) throws(TensorError) -> [UInt8] {
        try UnsafeFill.array(count: selection.elementCount * dtype.size) { (buffer) throws(TensorError) in try read(selection, into: buffer) }
    }
}

/// Reads through the HDF5 library: every layout and filter it knows.
final class LibraryArray: ArrayStore {
    let file: String
    let key: String
    let identity: FileIdentity
    let shape: [Int]
    let dtype: DType
    /// The chunk shape of chunked storage: reads are refused past the same decoding budget as
    /// direct reads.
    private let chunkShape: [Int]?
    private let roots: DataRoots
    private let describe: String

    /// `dataset` was opened from `file` as version `identity`; it is not kept open.
    init(_ dataset: HDF5Dataset, file: String, key: String, identity: FileIdentity, roots: DataRoots, describe: String) {
        self.roots = roots
        self.file = file
        self.key = key
        self.identity = identity
        self.shape = dataset.shape
        self.dtype = dataset.dtype
        if case .chunked(let chunkShape, _) = dataset.layout { self.chunkShape = chunkShape } else { self.chunkShape = nil }
        self.describe = describe
    }

    func read(_ selection: Hyperslab, into buffer: UnsafeMutableRawBufferPointer) throws(TensorError) {
        if let chunkShape, chunkShape.count == selection.rank, chunkShape.allSatisfy({ $0 > 0 }) {
            // Chunks the selection touches, axis by axis (each axis walks only its own positions).
            var touched = 1
            for axis in 0..<selection.rank where selection.count[axis] > 0 {
                var chunks = 0
                var previous = -1
                for position in 0..<selection.count[axis] {
                    let chunk = (selection.start[axis] + position * selection.stride[axis]) / chunkShape[axis]
                    if chunk != previous { chunks += 1 }
                    previous = chunk
                }
                touched = touched.multipliedReportingOverflow(by: chunks).overflow ? Int.max : touched * chunks
            }
            let chunkBytes = (chunkShape + [dtype.size]).checkedProduct ?? Int.max
            try DirectArray.checkDecodeBudget(chunks: touched, chunkBytes: chunkBytes, outputBytes: buffer.count, describe)
        }
        let opened: HDF5File
        let dataset: HDF5Dataset
        guard roots.contain(file) else { throw TensorError.outsideRoots(describe, file) }
        do { opened = try HDF5Vetting.shared.open(file) } catch { throw unreadable(error) }
        guard let descriptor = opened.fileDescriptor, roots.contain(descriptor: descriptor) else { throw TensorError.outsideRoots(describe, file) }
        guard FileIdentity.of(descriptor: descriptor) == identity else { throw TensorError.changed(describe) }
        do { dataset = try opened.dataset(key) } catch { throw unreadable(error) }
        guard dataset.shape == shape, dataset.dtype == dtype else { throw TensorError.changed(describe) }
        do { try dataset.read(selection, into: buffer) } catch { throw unreadable(error) }
    }

    private func unreadable(_ error: HDF5Error) -> TensorError {
        if error.kind == .checkUnavailable {
            return TensorError(.unavailable, "\(describe) cannot be opened now: \(error.detail)", file: file)
        }
        return TensorError(.unprocessable, "\(describe) cannot be read: \(error.detail)", file: file)
    }
}

extension TensorError {
    /// The file resolves, through a symbolic link, to a place outside the dataset's folders.
    static func outsideRoots(_ describe: String, _ file: String) -> TensorError {
        TensorError(.unprocessable, "\(describe) is a link to a file outside the dataset's folders; medsegd does not read it", file: file)
    }

    /// The file was replaced or rewritten after its array was opened for this request.
    static func changed(_ describe: String) -> TensorError {
        TensorError(.unprocessable, "\(describe) changed while it was being read; ask again")
    }
}
