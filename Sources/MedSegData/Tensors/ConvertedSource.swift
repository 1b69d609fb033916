import HDF5

/// Another source's array converted to a little-endian dtype, chunk by chunk (`?dtype=`).
final class ConvertedSource: TensorSource, @unchecked Sendable {
    let layout: TensorLayout
    private let base: any TensorSource

    init(_ base: any TensorSource, to target: DType) {
        self.base = base
        self.layout = TensorLayout(dtype: target.withByteOrder(.little), shape: base.layout.shape)
    }

    var openedFiles: [String: FileIdentity] { base.openedFiles }
    var readByteCount: Int { base.readByteCount }

    var chunkCount: Int { base.chunkCount }

    func chunkByteCount(_ index: Int) -> Int {
        base.chunkByteCount(index) / base.layout.dtype.size * layout.dtype.size
    }

    func readChunk(_ index: Int, into buffer: UnsafeMutableRawBufferPointer) throws(TensorError) {
        let raw = try base.readChunk(index)
        raw.withUnsafeBytes { Conversion.convert($0, from: base.layout.dtype, into: buffer, as: layout.dtype) }
    }

    func close() { base.close() }
}
