internal import HDF5

/// One HDF5 dataset, read through a region as a hyperslab, collated chunk by chunk when it is a
/// mask: item images and masks, and the volumes of 3D scans.
final class HyperslabSource: TensorSource, @unchecked Sendable {
    enum Transform {
        case none
        /// `squeezeAxis`: the kept spatial axis to drop when its length is 1 (2D slice masks).
        case collate(CategorySelection, BackgroundChannel, squeezeAxis: Int?)
    }

    let layout: TensorLayout
    private var dataset: (any ArrayStore)?
    private let slab: Hyperslab
    private let keptAxes: [Bool]
    private let transform: Transform
    private let chunking: RowChunking

    /// `region` must already be resolved against the dataset's shape (for masks: including the
    /// whole channel axis).
    init(dataset: any ArrayStore, region: ResolvedRegion, transform: Transform) {
        self.dataset = dataset
        self.openedFiles = [dataset.file: dataset.identity]
        self.slab = region.hyperslab
        self.keptAxes = region.keptAxes
        self.transform = transform
        let isMask: Bool
        switch transform {
        case .none:
            layout = TensorLayout(dtype: dataset.dtype, shape: region.shape)
            isMask = false
        case .collate(let selection, let background, let squeezeAxis):
            var spatial = Array(region.shape.dropLast())
            if let axis = squeezeAxis, axis < spatial.count, spatial[axis] == 1 { spatial.remove(at: axis) }
            layout = TensorLayout(dtype: dataset.dtype, shape: spatial + [selection.ids.count + (background == .none ? 0 : 1)])
            isMask = true
        }
        // Masks are never split along their channel axis: collation needs every channel of a pixel.
        chunking = RowChunking(
            counts: slab.count, splittable: isMask ? slab.rank - 1 : slab.rank, bytesPerElement: dataset.dtype.size)
    }

    let openedFiles: [String: FileIdentity]

    var readByteCount: Int { TensorLayout(dtype: layout.dtype, shape: slab.count).byteCount }

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
        case .collate(let selection, let background, _):
            // Dropped and squeezed axes have one element: the pixels are the same either way.
            let raw = try dataset.readBytes(sub)
            raw.withUnsafeBytes { input in
                Collation.collate(
                    input, dtype: dataset.dtype, channels: sub.count.last ?? 1, selection: selection, background: background, into: buffer)
            }
        }
    }

    func close() {
        dataset = nil
    }
}
