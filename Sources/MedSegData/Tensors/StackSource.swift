internal import HDF5

/// The slices of a 2D scan stacked in slice order: images `H x W x 1` become `H x W x D`,
/// masks `H x W x 1 x C` become `H x W x D x C'` (collated per slice). The region applies to the
/// stacked shape; only the selected slices are read, each as a hyperslab.
final class StackSource: TensorSource, @unchecked Sendable {
    let layout: TensorLayout
    private var slices: [any ArrayStore]
    /// Region over `[H, W, D]`.
    private let slab: Hyperslab
    private let keptAxes: [Bool]
    private let collation: (CategorySelection, BackgroundChannel)?
    private let chunking: RowChunking
    private let storedChannels: Int

    /// `slices`: the selected volume's datasets in slice order, all of one shape.
    /// `region`: resolved against `[H, W, D]`.
    init(slices: [any ArrayStore], region: ResolvedRegion, collation: (CategorySelection, BackgroundChannel)?) {
        self.slices = slices
        self.openedFiles = Dictionary(slices.map { ($0.file, $0.identity) }, uniquingKeysWith: { first, _ in first })
        self.slab = region.hyperslab
        self.keptAxes = region.keptAxes
        self.collation = collation
        let dtype = slices[0].dtype
        if let (selection, background) = collation {
            storedChannels = slices[0].shape.last ?? 1
            layout = TensorLayout(dtype: dtype, shape: region.shape + [selection.ids.count + (background == .none ? 0 : 1)])
        } else {
            storedChannels = 1
            layout = TensorLayout(dtype: dtype, shape: region.shape)
        }
        // Split along H only: each chunk then reads a band of rows from every selected slice.
        chunking = RowChunking(counts: slab.count, splittable: 1, bytesPerElement: dtype.size * (layout.shape.last ?? 1))
    }

    let openedFiles: [String: FileIdentity]

    var readByteCount: Int { TensorLayout(dtype: layout.dtype, shape: slab.count + [storedChannels]).byteCount }

    var chunkCount: Int { chunking.chunkCount }

    func chunkByteCount(_ index: Int) -> Int {
        chunking.byteCount(index, of: layout.byteCount)
    }

    func readChunk(_ index: Int, into output: UnsafeMutableRawBufferPointer) throws(TensorError) {
        let sub = chunking.subslab(slab, chunk: index)
        let (rows, columns, depth) = (sub.count[0], sub.count[1], sub.count[2])
        let channels = layout.shape.last.map { collation == nil ? 1 : $0 } ?? 1
        let elementBytes = layout.dtype.size * channels
        for j in 0..<depth {
            let sliceIndex = sub.start[2] + j * sub.stride[2]
            let dataset = slices[sliceIndex]
            // The band of this slice: [rows, columns, 0] (and every channel of a mask).
            var start = [sub.start[0], sub.start[1], 0]
            var count = [rows, columns, 1]
            var stride = [sub.stride[0], sub.stride[1], 1]
            if collation != nil {
                start.append(0)
                count.append(storedChannels)
                stride.append(1)
            }
            let band = try dataset.readBytes(Hyperslab(start: start, count: count, stride: stride))
            var values = band
            if let (selection, background) = collation {
                let mask = Tensor(dtype: dataset.dtype, shape: [rows, columns, storedChannels], bytes: band)
                values = Collation.collate(mask, selection: selection, background: background).bytes
            }
            // Interleave: this slice becomes position j of the fastest spatial axis.
            values.withUnsafeBytes { source in
                for pixel in 0..<(rows * columns) {
                    let from = pixel * elementBytes
                    let to = (pixel * depth + j) * elementBytes
                    output.baseAddress!.advanced(by: to).copyMemory(from: source.baseAddress!.advanced(by: from), byteCount: elementBytes)
                }
            }
        }
    }

    func close() {
        slices = []
    }
}
