internal import HDF5

/// The slices of a 2D scan stacked in slice order: images `H x W x 1` become `H x W x D`,
/// masks `H x W x 1 x C` become `H x W x D x C'` (collated per slice) or `H x W x D` labels. The region applies to the
/// stacked shape; only the selected slices are read, each as a hyperslab.
final class StackSource: TensorSource, @unchecked Sendable {
    let layout: TensorLayout
    private var slices: [any ArrayStore]
    /// Region over `[H, W, D]`.
    private let slab: Hyperslab
    private let mask: MaskTransform?
    private let chunking: RowChunking
    private let storedChannels: Int
    private let storedDType: DType
    /// Output bytes per pixel: one element, or one per channel of a collated mask.
    private let elementBytes: Int

    /// `slices`: the selected volume's datasets in slice order, all of one shape.
    /// `region`: resolved against `[H, W, D]`.
    init(slices: [any ArrayStore], region: ResolvedRegion, mask: MaskTransform?) {
        self.slices = slices
        self.openedFiles = Dictionary(slices.map { ($0.file, $0.identity) }, uniquingKeysWith: { first, _ in first })
        self.slab = region.hyperslab
        self.mask = mask
        let dtype = slices[0].dtype
        storedDType = dtype
        if let mask {
            storedChannels = slices[0].shape.last ?? 1
            layout = TensorLayout(dtype: mask.outputDType(stored: dtype), shape: mask.outputShape(spatial: region.shape))
        } else {
            storedChannels = 1
            layout = TensorLayout(dtype: dtype, shape: region.shape)
        }
        elementBytes = layout.dtype.size * (mask?.outputChannels ?? 1)
        // Split along H only: each chunk then reads a band of rows from every selected slice.
        chunking = RowChunking(counts: slab.count, splittable: 1, bytesPerElement: elementBytes)
    }

    let openedFiles: [String: FileIdentity]

    var readByteCount: Int { TensorLayout(dtype: storedDType, shape: slab.count + [storedChannels]).byteCount }

    var chunkCount: Int { chunking.chunkCount }

    func chunkByteCount(_ index: Int) -> Int {
        chunking.byteCount(index, of: layout.byteCount)
    }

    func readChunk(_ index: Int, into output: UnsafeMutableRawBufferPointer) throws(TensorError) {
        let sub = chunking.subslab(slab, chunk: index)
        let (rows, columns, depth) = (sub.count[0], sub.count[1], sub.count[2])
        let elementBytes = elementBytes
        for j in 0..<depth {
            let sliceIndex = sub.start[2] + j * sub.stride[2]
            let dataset = slices[sliceIndex]
            // The band of this slice: [rows, columns, 0] (and every channel of a mask).
            var start = [sub.start[0], sub.start[1], 0]
            var count = [rows, columns, 1]
            var stride = [sub.stride[0], sub.stride[1], 1]
            if mask != nil {
                start.append(0)
                count.append(storedChannels)
                stride.append(1)
            }
            var values = try dataset.readBytes(Hyperslab(start: start, count: count, stride: stride))
            if let mask {
                let band = values
                var failure: TensorError?
                values = [UInt8](unsafeUninitializedCapacity: rows * columns * elementBytes) { out, initialized in
                    band.withUnsafeBytes { input in
                        do throws(TensorError) {
                            try mask.apply(input, dtype: dataset.dtype, channels: storedChannels, into: UnsafeMutableRawBufferPointer(out)) { pixel in
                                // Its place in the scan's H x W x D array (not the region's).
                                [sub.start[0] + pixel / columns * sub.stride[0], sub.start[1] + pixel % columns * sub.stride[1], sliceIndex]
                            }
                        } catch {
                            failure = error
                            out.initialize(repeating: 0)
                        }
                    }
                    initialized = out.count
                }
                if let failure { throw failure }
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
