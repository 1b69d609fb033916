internal import HDF5

/// Computes one volume's fingerprint (`ScanRecord`) from its files: intensity statistics over
/// every voxel, voxel counts per stored channel and per collated class, and a seeded foreground
/// index per channel, as nnU-Net's planning does. Blocking: run it off the event loops.
public struct FingerprintComputer: Sendable {
    /// Foreground voxels kept per channel and volume (nnU-Net keeps 10,000 per class).
    public static let foregroundSamplesPerChannel = 10_000
    /// Voxel values kept per volume for the dataset's percentiles.
    public static let intensitySamples = 10_000

    public let reader: TensorReader

    public init(reader: TensorReader) {
        self.reader = reader
    }

    private var entry: CatalogEntry { reader.entry }
    private var selection: CategorySelection { CategorySelection(entry.metadata.categoryIDs) }

    /// The versions of the files the volume is read from now (a missing file reads as such).
    public func key(scanID: String, aug: Int) throws(TensorError) -> ScanKey {
        let files = try reader.files(ofScan: scanID, aug: aug).map { path in
            "\(path) \(FileIdentity.of(path).map(String.init(describing:)) ?? "missing")"
        }
        let storage = reader.storageDescription(items: try reader.volume(scan: scanID, aug: aug).items)
        return ScanKey(scanID: scanID, aug: aug, storage: storage, files: files, categories: selection.description)
    }

    /// Volumes with more voxels are skipped (a sparse file can declare terabytes that read as zeros).
    public static let maxVoxels = 1 << 31
    /// Up to this many voxels a volume's percentiles are exact; past it they come from a seeded
    /// sample of this many (the values are held as float64 to select them).
    public static let exactPercentileVoxels = 1 << 23

    public func compute(scanID: String, aug: Int) throws(TensorError) -> ScanRecord {
        let key = try key(scanID: scanID, aug: aug)
        let seed = "\(entry.name)\n\(scanID)\n\(aug)"
        let image = try reader.scanImage(scanID, aug: aug, options: TensorOptions())
        let shape = image.layout.shape
        let dtype = image.layout.dtype
        let statistics: RunningStatistics
        do {
            defer { image.close() }
            // Sampling reads patches of H x W x D volumes: anything else is no volume to fingerprint.
            guard shape.count == 3 else {
                throw TensorError(.unprocessable, "scan '\(scanID)' (aug \(aug)): the image has shape \(shape); a volume is H x W x D")
            }
            guard image.layout.elementCount <= Self.maxVoxels else {
                throw TensorError(
                    .unprocessable,
                    "scan '\(scanID)' (aug \(aug)) has \(image.layout.elementCount) voxels, over the \(Self.maxVoxels) a fingerprint reads")
            }
            statistics = try RunningStatistics.of(image, seed: "intensity\n" + seed)
        }
        var channelVoxels: [Int] = []
        var classVoxels: [Int] = []
        var foreground: [[UInt32]] = []
        var maskShape: [Int] = []
        var labeled = true
        for index in try reader.volume(scan: scanID, aug: aug).items where try !reader.isLabeled(index) { labeled = false }
        if labeled {
            var options = TensorOptions()
            options.storedChannels = true
            let mask = try reader.scanMask(scanID, aug: aug, options: options)
            defer { mask.close() }
            maskShape = Array(mask.layout.shape.dropLast())
            guard maskShape == shape else {
                throw TensorError(
                    .unprocessable,
                    "scan '\(scanID)' (aug \(aug)): the mask has shape \(mask.layout.shape); the image's \(shape) plus channels was expected")
            }
            let counts = try MaskCounter.count(mask, classes: selection, seed: "foreground\n" + seed)
            channelVoxels = counts.channels
            classVoxels = counts.classes
            foreground = counts.foreground
        }
        let fingerprint = ScanFingerprint(
            scanID: scanID, aug: aug, shape: shape, dtype: dtype.numpyDescriptor, voxels: statistics.voxels, intensity: statistics.intensity,
            channelVoxels: channelVoxels, classVoxels: classVoxels, foregroundSamples: foreground.map(\.count))
        return ScanRecord(
            key: key, fingerprint: fingerprint, countedVoxels: statistics.counted, intensitySample: statistics.sample, foreground: foreground,
            maskShape: maskShape)
    }
}

/// An image's statistics in one pass over its chunks: min, max, and mean and variance by
/// Welford's method, in float64 with NaNs left out; the percentiles selected from every value
/// (or, past `exactPercentileVoxels`, from a seeded reservoir of that many); and a seeded
/// reservoir of `intensitySamples` values for the dataset's percentiles.
struct RunningStatistics {
    var voxels = 0
    var counted = 0
    var intensity: IntensityStatistics?
    var sample: [Double] = []

    static func of(_ source: any TensorSource, seed: String) throws(TensorError) -> RunningStatistics {
        let dtype = source.layout.dtype
        var result = RunningStatistics()
        var minimum = Double.infinity
        var maximum = -Double.infinity
        var mean = 0.0
        var squares = 0.0
        var sum = 0.0
        var kept: [Double] = []
        kept.reserveCapacity(min(source.layout.elementCount, FingerprintComputer.exactPercentileVoxels))
        var random = SeededRandom(text: seed)
        var chunkValues: [Double] = []
        for chunk in 0..<source.chunkCount {
            let raw = try source.readChunk(chunk)
            let count = raw.count / dtype.size
            chunkValues.removeAll(keepingCapacity: true)
            chunkValues.append(contentsOf: repeatElement(0, count: count))
            chunkValues.withUnsafeMutableBytes { out in
                raw.withUnsafeBytes { Conversion.convert($0, from: dtype, into: out, as: .float64) }
            }
            result.voxels += count
            for value in chunkValues where !value.isNaN {
                result.counted += 1
                minimum = Swift.min(minimum, value)
                maximum = Swift.max(maximum, value)
                sum += value
                let delta = value - mean
                mean += delta / Double(result.counted)
                squares += delta * (value - mean)
                reservoir(&kept, value, seen: result.counted, limit: FingerprintComputer.exactPercentileVoxels, &random)
                reservoir(&result.sample, value, seen: result.counted, limit: FingerprintComputer.intensitySamples, &random)
            }
        }
        guard result.counted > 0 else { return result }
        // With infinities (or a sum past float64's range) NumPy's mean is the sum's (inf or NaN)
        // and its std NaN; Welford's running values are not meaningful then.
        let finite = sum.isFinite
        var variance = squares / Double(result.counted)
        if finite, kept.count == result.counted {
            // Every value is at hand (in order): two passes, as NumPy computes them, exact to the
            // last bits where a running variance of values far from zero is not.
            mean = sum / Double(result.counted)
            var deviations = 0.0
            for value in kept { deviations += (value - mean) * (value - mean) }
            variance = deviations / Double(result.counted)
        }
        result.intensity = IntensityStatistics(
            min: minimum, max: maximum, mean: finite ? mean : sum / Double(result.counted),
            std: finite && !variance.isNaN ? Swift.max(0, variance).squareRoot() : .nan,
            percentile00_5: Selection.percentile(&kept, 0.5), percentile99_5: Selection.percentile(&kept, 99.5))
        return result
    }

    /// Algorithm R: the `seen`-th value (1-based) replaces a kept one with probability limit/seen.
    private static func reservoir(_ kept: inout [Double], _ value: Double, seen: Int, limit: Int, _ random: inout SeededRandom) {
        if kept.count < limit {
            kept.append(value)
        } else {
            let slot = random.below(seen)
            if slot < limit { kept[slot] = value }
        }
    }
}
