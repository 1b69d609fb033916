internal import HDF5

/// A stored array that can fill a buffer with any hyperslab of itself, as stored (no conversion).
/// Two kinds: the HDF5 library itself, and `DirectArray`, which reads the same bytes with
/// `pread` (and zlib) where the layout allows, outside HDF5's global lock.
protocol ArrayStore: AnyObject {
    var shape: [Int] { get }
    var dtype: DType { get }
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
    let dataset: HDF5Dataset
    private let describe: String

    init(_ dataset: HDF5Dataset, describe: String) {
        self.dataset = dataset
        self.describe = describe
    }

    var shape: [Int] { dataset.shape }
    var dtype: DType { dataset.dtype }

    func read(_ selection: Hyperslab, into buffer: UnsafeMutableRawBufferPointer) throws(TensorError) {
        do {
            try dataset.read(selection, into: buffer)
        } catch {
            throw TensorError(.unprocessable, "\(describe) cannot be read: \(error.detail)")
        }
    }
}
