internal import HDF5

/// Reading a sample's patches: each is read as a region of its volume, clipped to the volume,
/// and pasted into a patch-sized buffer whose outside is padding.
extension TensorReader {
    /// The sample's arrays, in `.npz` order: `image` (N x patch), `mask` (N x patch x C', or
    /// N x patch labels; absent when a volume is unlabeled), `scan_index`, `aug` (N), `center`
    /// (N x 3) and `foreground` (N). Padding: image 0; mask as if nothing were labelled there
    /// (the background channel 1, labels the "none" index). Sizes count against `byteLimit`.
    /// `expected` (from `checkFingerprints`): the file versions the plans were drawn from; a
    /// patch read from another version throws `StaleFingerprint`.
    public func patches(
        _ plans: [PatchPlan], request: SampleRequest, expected: [String: String], byteLimit: Int
    ) throws -> [(name: String, tensor: Tensor)] {
        let patch = request.patchSize + (request.patchSize.count == 2 ? [1] : [])
        let rank = request.patchSize.count
        let labeled = try samplesAreLabeled(plans)
        var image: PatchStack?
        var mask: PatchStack?
        // Bytes held: both stacks whole (counted when made, before they are allocated) and each
        // patch's reads.
        var held = 0
        func count(_ bytes: Int) throws(TensorError) {
            held = held.addingSaturating(bytes)
            guard held <= byteLimit else { throw Self.overLimit(held, byteLimit) }
        }
        // The largest read of one patch (its buffers go before the next patch is read).
        var largestRead = 0
        func read(_ bytes: Int) throws(TensorError) {
            guard bytes > largestRead else { return }
            try count(bytes - largestRead)
            largestRead = bytes
        }
        for (n, plan) in plans.enumerated() {
            let (options, offset, inside) = try patchRegion(plan, request: request)
            let imageSource = try scanImage(plan.scanID, aug: plan.aug, options: options)
            do {
                defer { imageSource.close() }
                try checkOpened(imageSource, expected: expected, plan: plan)
                if image == nil {
                    let stack = PatchStack(count: plans.count, patch: patch, dtype: imageSource.layout.dtype, channels: nil)
                    try count(stack.byteCount)
                    image = stack.allocated(empty: [])
                }
                try read(imageSource.readByteCount.addingSaturating(imageSource.layout.byteCount))
                try image!.fill(n, from: imageSource, offset: offset, whole: inside, rank: rank, scan: plan.scanID)
            }
            guard labeled else { continue }
            var maskOptions = options
            maskOptions.dtype = nil
            let maskSource = try scanMask(plan.scanID, aug: plan.aug, options: maskOptions)
            defer { maskSource.close() }
            try checkOpened(maskSource, expected: expected, plan: plan)
            if mask == nil {
                let channels = request.options.maskFormat == .labels ? nil : maskSource.layout.shape.last
                let stack = PatchStack(count: plans.count, patch: patch, dtype: maskSource.layout.dtype, channels: channels)
                try count(stack.byteCount)
                mask = stack.allocated(
                    empty: emptyVoxel(
                        dtype: maskSource.layout.dtype, channels: channels, background: request.options.background, classes: classCount(request)))
            }
            try read(maskSource.readByteCount.addingSaturating(maskSource.layout.byteCount))
            try mask!.fill(n, from: maskSource, offset: offset, whole: inside, rank: rank, scan: plan.scanID)
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

    /// The region of `plan`'s volume its patch covers (clipped to the volume), where that lands
    /// in the patch, and whether the patch lies wholly inside the volume.
    func patchRegion(_ plan: PatchPlan, request: SampleRequest) throws(TensorError) -> (options: TensorOptions, offset: [Int], inside: Bool) {
        guard plan.shape.count == 3, plan.center.count == 3 else {
            throw TensorError(.unprocessable, "scan '\(plan.scanID)' is no H x W x D volume (shape \(plan.shape))")
        }
        let patch = request.patchSize + (request.patchSize.count == 2 ? [1] : [])
        var region: [Region.Component] = []
        var offset: [Int] = []
        var inside = true
        for axis in 0..<3 {
            let start = plan.center[axis] - patch[axis] / 2
            let low = max(0, start)
            let high = min(plan.shape[axis], start + patch[axis])
            offset.append(low - start)
            inside = inside && low == start && high == start + patch[axis]
            // A 2D patch takes its centre's slice (an index drops the axis).
            region.append(request.patchSize.count == 2 && axis == 2 ? .index(plan.center[2]) : .slice(start: low, stop: high, step: nil))
        }
        var options = request.options
        options.region = Region(region)
        return (options, offset, inside)
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

/// N patches of one dtype, filled with padding and then with each patch's voxels.
struct PatchStack {
    /// `H x W x D` of a patch (2D patches: D = 1).
    let patch: [Int]
    let dtype: DType
    /// Channels of a collated mask's last axis, or nil.
    let channels: Int?
    let voxelBytes: Int
    let count: Int
    var bytes: [UInt8] = []

    init(count: Int, patch: [Int], dtype: DType, channels: Int?) {
        self.count = count
        self.patch = patch
        self.dtype = dtype
        self.channels = channels
        voxelBytes = dtype.size * (channels ?? 1)
    }

    /// Bytes the stack takes (saturating: a huge request is refused by the limit, not a trap).
    var byteCount: Int { ([count, voxelBytes] + patch).checkedProduct ?? Int.max }

    /// The stack with its memory, every voxel set to `empty` (zeros when `empty` is).
    func allocated(empty: [UInt8]) -> PatchStack {
        var stack = self
        let voxels = count * patch.reduce(1, *)
        stack.bytes = [UInt8](repeating: 0, count: voxels * voxelBytes)
        guard !empty.allSatisfy({ $0 == 0 }), voxels > 0 else { return stack }
        // The first voxel, then doubling copies of what is filled.
        stack.bytes.withUnsafeMutableBytes { target in
            target.copyBytes(from: empty)
            var filled = empty.count
            while filled < target.count {
                let step = min(filled, target.count - filled)
                (target.baseAddress! + filled).copyMemory(from: target.baseAddress!, byteCount: step)
                filled += step
            }
        }
        return stack
    }

    /// Reads patch `n` from `source` (the clipped patch: `rank` spatial axes, then the channels
    /// if any): straight into its place when the patch lies wholly inside the volume, else
    /// through a block pasted at `offset`.
    mutating func fill(_ n: Int, from source: any TensorSource, offset: [Int], whole: Bool, rank: Int, scan: String) throws(TensorError) {
        let layout = source.layout
        let trailing = Array(layout.shape.dropFirst(rank))
        guard layout.dtype == dtype, layout.shape.count >= rank, trailing.reduce(1, *) * dtype.size == voxelBytes else {
            throw TensorError(
                .unprocessable,
                "the sampled volumes differ: scan '\(scan)' gives \(layout.dtype) \(trailing) per voxel, an earlier one \(dtype) \(channels.map { [$0] } ?? []); a sample needs one dtype and channel count"
            )
        }
        let slot = patch.reduce(1, *) * voxelBytes
        if whole, layout.byteCount == slot {
            var failure: TensorError?
            bytes.withUnsafeMutableBytes { target in
                var at = n * slot
                for chunk in 0..<source.chunkCount {
                    let size = source.chunkByteCount(chunk)
                    do throws(TensorError) {
                        try source.readChunk(chunk, into: UnsafeMutableRawBufferPointer(rebasing: target[at..<(at + size)]))
                    } catch {
                        failure = error
                        return
                    }
                    at += size
                }
            }
            if let failure { throw failure }
            return
        }
        let block = try source.readAll()
        let extent = rank == 2 ? Array(block.shape.prefix(2)) + [1] : Array(block.shape.prefix(3))
        // The block must fit its place: the region was clipped to the volume the plan named.
        guard extent.count == 3, offset.count == 3, (0..<3).allSatisfy({ offset[$0] >= 0 && extent[$0] >= 0 && offset[$0] + extent[$0] <= patch[$0] })
        else {
            throw TensorError(
                .unprocessable,
                "scan '\(scan)': a patch block of shape \(block.shape) does not fit the patch \(patch); the volume changed since its fingerprint")
        }
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
        Tensor(dtype: dtype, shape: [count] + shape + (channels.map { [$0] } ?? []), bytes: bytes)
    }
}
