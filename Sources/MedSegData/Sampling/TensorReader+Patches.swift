public import HDF5

/// Reading a sample's patches: each is read as a region of its volume, clipped to the volume,
/// and pasted into a patch-sized buffer whose outside is padding.
extension TensorReader {
    /// The sample's arrays, in `.npz` order: `image` (N x patch), `mask` (N x patch x C', or
    /// N x patch labels; absent when a volume is unlabeled), `scan_index`, `aug` (N), `center`
    /// (N x 3) and `foreground` (N). Padding: image 0; mask as if nothing were labelled there
    /// (the background channel 1, labels the "none" index). Sizes count against `byteLimit`.
    public func patches(_ plans: [PatchPlan], request: SampleRequest, byteLimit: Int) throws(TensorError) -> [(name: String, tensor: Tensor)] {
        let patch = request.patchSize + (request.patchSize.count == 2 ? [1] : [])
        let patchVoxels = patch.reduce(1, *)
        var labeled = true
        for plan in plans {
            for index in try volume(scan: plan.scanID, aug: plan.aug).items where try !isLabeled(index) { labeled = false }
        }
        var image: PatchStack?
        var mask: PatchStack?
        var bytes = 0
        for (n, plan) in plans.enumerated() {
            var region: [Region.Component] = []
            var offset: [Int] = []
            for axis in 0..<3 {
                let start = plan.center[axis] - patch[axis] / 2
                let low = max(0, start)
                let high = min(plan.shape[axis], start + patch[axis])
                offset.append(low - start)
                // A 2D patch takes its centre's slice (an index drops the axis).
                region.append(request.patchSize.count == 2 && axis == 2 ? .index(plan.center[2]) : .slice(start: low, stop: high, step: nil))
            }
            var options = request.options
            options.region = Region(region)
            let imageSource = try scanImage(plan.scanID, aug: plan.aug, options: options)
            let imageBlock: Tensor
            do {
                defer { imageSource.close() }
                bytes = bytes.addingSaturating(imageSource.readByteCount).addingSaturating(patchVoxels * imageSource.layout.dtype.size)
                guard bytes <= byteLimit else { throw Self.overLimit(bytes, byteLimit) }
                imageBlock = try imageSource.readAll()
            }
            if image == nil { image = PatchStack(count: plans.count, patch: patch, dtype: imageBlock.dtype, channels: nil, empty: []) }
            try image!.paste(imageBlock, at: n, offset: offset, rank: request.patchSize.count, scan: plan.scanID)
            guard labeled else { continue }
            var maskOptions = options
            maskOptions.dtype = nil
            let maskSource = try scanMask(plan.scanID, aug: plan.aug, options: maskOptions)
            let maskBlock: Tensor
            do {
                defer { maskSource.close() }
                bytes = bytes.addingSaturating(maskSource.readByteCount).addingSaturating(
                    patchVoxels * maskSource.layout.byteCount / max(1, maskSource.layout.elementCount))
                guard bytes <= byteLimit else { throw Self.overLimit(bytes, byteLimit) }
                maskBlock = try maskSource.readAll()
            }
            if mask == nil {
                let channels = request.options.maskFormat == .labels ? nil : maskBlock.shape.last
                mask = PatchStack(
                    count: plans.count, patch: patch, dtype: maskBlock.dtype, channels: channels,
                    empty: emptyVoxel(
                        dtype: maskBlock.dtype, channels: channels, background: request.options.background, classes: classCount(request)))
            }
            try mask!.paste(maskBlock, at: n, offset: offset, rank: request.patchSize.count, scan: plan.scanID)
        }
        let shape = request.patchSize
        var arrays: [(name: String, tensor: Tensor)] = []
        if let image { arrays.append(("image", image.tensor(shape: shape))) }
        if let mask { arrays.append(("mask", mask.tensor(shape: shape))) }
        arrays.append(("scan_index", Self.int64([plans.count], plans.map(\.scanIndex))))
        arrays.append(("aug", Self.int64([plans.count], plans.map(\.aug))))
        arrays.append(("center", Self.int64([plans.count, 3], plans.flatMap(\.center))))
        arrays.append(("foreground", Tensor(dtype: .bool, shape: [plans.count], bytes: plans.map { $0.foreground ? 1 : 0 })))
        return arrays
    }

    private func classCount(_ request: SampleRequest) -> Int {
        (request.options.categories?.ids ?? entry.metadata.categoryIDs).count
    }

    /// One voxel of mask where nothing is labelled: the classes 0 and a background channel 1,
    /// or the label of "no class" (0, or C with `background=last`).
    private func emptyVoxel(dtype: DType, channels: Int?, background: BackgroundChannel, classes: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: dtype.size * (channels ?? 1))
        let codec = ElementCodec(dtype)
        bytes.withUnsafeMutableBytes { out in
            if let channels {
                guard background != .none else { return }
                codec.store(.integer(1), out, background == .first ? 0 : channels - 1)
            } else if background == .last {
                codec.store(.integer(Int64(classes)), out, 0)
            }
        }
        return bytes
    }

    private static func int64(_ shape: [Int], _ values: [Int]) -> Tensor {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(values.count * 8)
        for value in values { withUnsafeBytes(of: Int64(value).littleEndian) { bytes += $0 } }
        return Tensor(dtype: .int64, shape: shape, bytes: bytes)
    }
}

/// N patches of one dtype, filled with padding and pasted into.
struct PatchStack {
    /// `H x W x D` of a patch (2D patches: D = 1).
    let patch: [Int]
    let dtype: DType
    /// Channels of a collated mask's last axis, or nil.
    let channels: Int?
    let voxelBytes: Int
    var bytes: [UInt8]

    init(count: Int, patch: [Int], dtype: DType, channels: Int?, empty: [UInt8]) {
        self.patch = patch
        self.dtype = dtype
        self.channels = channels
        voxelBytes = dtype.size * (channels ?? 1)
        let voxels = count * patch.reduce(1, *)
        bytes = empty.allSatisfy { $0 == 0 } ? [UInt8](repeating: 0, count: voxels * voxelBytes) : Array(repeatElement(empty, count: voxels).joined())
    }

    /// Copies `block` (the clipped patch: `rank` spatial axes, then the channels if any) into
    /// patch `n`, its first voxel at `offset`.
    mutating func paste(_ block: Tensor, at n: Int, offset: [Int], rank: Int, scan: String) throws(TensorError) {
        let trailing = Array(block.shape.dropFirst(rank))
        guard block.dtype == dtype, block.shape.count >= rank, trailing.reduce(1, *) * dtype.size == voxelBytes else {
            throw TensorError(
                .unprocessable,
                "the sampled volumes differ: scan '\(scan)' gives \(block.dtype) \(block.shape.dropFirst(rank)) per voxel, an earlier one \(dtype) \(channels.map { "[\($0)]" } ?? "[]"); a sample needs one dtype and channel count"
            )
        }
        let extent = rank == 2 ? Array(block.shape.prefix(2)) + [1] : Array(block.shape.prefix(3))
        let base = n * patch.reduce(1, *)
        let run = extent[2] * voxelBytes
        guard run > 0 else { return }
        block.bytes.withUnsafeBytes { source in
            bytes.withUnsafeMutableBytes { target in
                for i in 0..<extent[0] {
                    for j in 0..<extent[1] {
                        let from = (i * extent[1] + j) * run
                        let to = (base + ((i + offset[0]) * patch[1] + (j + offset[1])) * patch[2] + offset[2]) * voxelBytes
                        target.baseAddress!.advanced(by: to).copyMemory(from: source.baseAddress!.advanced(by: from), byteCount: run)
                    }
                }
            }
        }
    }

    /// The stack as an array: N x `shape` (the patch size asked for), then the channels.
    func tensor(shape: [Int]) -> Tensor {
        let count = bytes.count / max(1, patch.reduce(1, *) * voxelBytes)
        return Tensor(dtype: dtype, shape: [count] + shape + (channels.map { [$0] } ?? []), bytes: bytes)
    }
}
