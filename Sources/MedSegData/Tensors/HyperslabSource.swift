internal import HDF5

/// One HDF5 dataset, read through a region as a hyperslab, its channels collated (or made a
/// class-index map) chunk by chunk when it is a mask: item images and masks, 3D scan volumes.
final class HyperslabSource: TensorSource, @unchecked Sendable {
    enum Transform {
        case none
        /// `squeezeAxis`: the kept spatial axis to drop when its length is 1 (2D slice masks).
        case mask(MaskTransform, squeezeAxis: Int?)
    }

    let layout: TensorLayout
    private var dataset: (any ArrayStore)?
    private let slab: Hyperslab
    private let transform: Transform
    private let chunking: RowChunking
    private let storedDType: DType

    /// `region` must already be resolved against the dataset's shape (for masks: including the
    /// whole channel axis).
    init(dataset: any ArrayStore, region: ResolvedRegion, transform: Transform) {
        self.dataset = dataset
        self.openedFiles = [dataset.file: dataset.identity]
        self.slab = region.hyperslab
        self.transform = transform
        self.storedDType = dataset.dtype
        let isMask: Bool
        switch transform {
        case .none:
            layout = TensorLayout(dtype: dataset.dtype, shape: region.shape)
            isMask = false
        case .mask(let mask, let squeezeAxis):
            var spatial = Array(region.shape.dropLast())
            if let axis = squeezeAxis, axis < spatial.count, spatial[axis] == 1 { spatial.remove(at: axis) }
            layout = TensorLayout(dtype: mask.outputDType(stored: dataset.dtype), shape: mask.outputShape(spatial: spatial))
            isMask = true
        }
        // Masks are never split along their channel axis: collation needs every channel of a pixel.
        chunking = RowChunking(
            counts: slab.count, splittable: isMask ? slab.rank - 1 : slab.rank, bytesPerElement: dataset.dtype.size)
    }

    let openedFiles: [String: FileIdentity]

    var readByteCount: Int { TensorLayout(dtype: storedDType, shape: slab.count).byteCount }

    var chunkCount: Int { chunking.chunkCount }

    func chunkByteCount(_ index: Int) -> Int {
        chunking.byteCount(index, of: layout.byteCount)
    }

    func readChunk(_ index: Int, into buffer: UnsafeMutableRawBufferPointer) throws(TensorError) {
        guard let dataset else { throw TensorError(.unprocessable, "an array was read after its request released it") }
        let sub = chunking.subslab(slab, chunk: index)
        switch transform {
        case .none:
            try dataset.read(sub, into: buffer)
        case .mask(let mask, _):
            // Dropped and squeezed axes have one element: the pixels are the same either way,
            // and the chunk's first pixel is its first row's in the output.
            let raw = try dataset.readBytes(sub)
            var failure: TensorError?
            raw.withUnsafeBytes { input in
                do throws(TensorError) {
                    try mask.apply(input, dtype: dataset.dtype, channels: sub.count.last ?? 1, into: buffer) { pixel in
                        // Named in the stored array, as the item's array has it (not the region's).
                        let spatial = sub.rank - 1
                        let position = Array(sub.count.prefix(spatial)).unravel(pixel).enumerated().map { axis, i in
                            sub.start[axis] + i * sub.stride[axis]
                        }
                        return Array(position.prefix(mask.positionRank ?? spatial))
                    }
                } catch {
                    failure = error
                }
            }
            if let failure { throw failure }
        }
    }

    func close() {
        dataset = nil
    }
}
