internal import HDF5

/// How much memory a sample takes, known before any patch is read: what it reserves of
/// `max_inflight_bytes`, and what `max_response_bytes` is checked against.
extension TensorReader {
    public struct SampleFootprint: Sendable, Equatable {
        /// The archive sent: the patch stacks, the small members and the npz framing.
        public var responseBytes: Int
        /// The most held at once while it is built and sent: the stacks, the largest read of one
        /// patch and the archive.
        public var heldBytes: Int
    }

    /// The footprint of a sample of `plans`, from the dtypes and channels of the first patch's
    /// arrays (every other volume must match them, or the sample fails as it is read).
    public func sampleFootprint(_ plans: [PatchPlan], request: SampleRequest) throws(TensorError) -> SampleFootprint {
        guard let first = plans.first else { return SampleFootprint(responseBytes: 0, heldBytes: 0) }
        let (options, _, _) = try patchRegion(first, request: request)
        // Per voxel of a patch: bytes in the stacks, and bytes read (stored, then converted).
        var stackBytes = 0
        var readBytes = 0
        let image = try scanImage(first.scanID, aug: first.aug, options: options)
        defer { image.close() }
        let regionVoxels = max(1, image.layout.elementCount)
        stackBytes += image.layout.dtype.size
        readBytes = image.readByteCount / regionVoxels + image.layout.dtype.size
        if try samplesAreLabeled(plans) {
            var maskOptions = options
            maskOptions.dtype = nil
            let mask = try scanMask(first.scanID, aug: first.aug, options: maskOptions)
            defer { mask.close() }
            let maskVoxelBytes = mask.layout.byteCount / regionVoxels
            stackBytes += maskVoxelBytes
            readBytes = max(readBytes, mask.readByteCount / regionVoxels + maskVoxelBytes)
        }
        let patchVoxels = request.patchSize.checkedProduct ?? .max
        let stacks = [plans.count, patchVoxels, stackBytes].checkedProduct ?? .max
        // scan_index, aug (int64), center (3 x int64), foreground (bool) per patch; headers.
        let small = plans.count.multipliedReportingOverflow(by: 8 + 8 + 24 + 1)
        let response = stacks.addingSaturating(small.overflow ? .max : small.partialValue).addingSaturating(Self.archiveFraming)
        let largestRead = patchVoxels.multipliedReportingOverflow(by: readBytes)
        let held = stacks.addingSaturating(largestRead.overflow ? .max : largestRead.partialValue).addingSaturating(response)
        return SampleFootprint(responseBytes: response, heldBytes: held)
    }

    /// Whether every sampled volume has masks (else the sample has no `mask` member).
    func samplesAreLabeled(_ plans: [PatchPlan]) throws(TensorError) -> Bool {
        for plan in plans {
            for index in try volume(scan: plan.scanID, aug: plan.aug).items where try !isLabeled(index) { return false }
        }
        return true
    }

    /// Npz headers, local and central, of a sample's six members.
    static let archiveFraming = 4096
}
