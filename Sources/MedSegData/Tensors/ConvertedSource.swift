import HDF5

/// Another source's array converted to a little-endian dtype, chunk by chunk (`?dtype=`).
final class ConvertedSource: TensorSource, @unchecked Sendable {
    let layout: TensorLayout
    private let base: any TensorSource

    init(_ base: any TensorSource, to target: DType) {
        self.base = base
        self.layout = TensorLayout(dtype: target.withByteOrder(.little), shape: base.layout.shape)
    }

    var chunkCount: Int { base.chunkCount }

    func readChunk(_ index: Int) throws(TensorError) -> [UInt8] {
        let raw = try base.readChunk(index)
        let elements = raw.count / base.layout.dtype.size
        return Conversion.convert(Tensor(dtype: base.layout.dtype, shape: [elements], bytes: raw), to: layout.dtype).bytes
    }

    func close() { base.close() }
}
