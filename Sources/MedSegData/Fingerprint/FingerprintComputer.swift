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
        return ScanKey(scanID: scanID, aug: aug, files: files, categories: selection.description)
    }

    public func compute(scanID: String, aug: Int) throws(TensorError) -> ScanRecord {
        let key = try key(scanID: scanID, aug: aug)
        let seed = "\(entry.name)\n\(scanID)\n\(aug)"
        let image = try reader.scanImage(scanID, aug: aug, options: TensorOptions())
        let shape = image.layout.shape
        let dtype = image.layout.dtype
        var values: [Double]
        do {
            defer { image.close() }
            values = try Self.doubles(of: image)
        }
        let voxels = values.count
        values.removeAll { $0.isNaN }
        var random = SeededRandom(text: "intensity\n" + seed)
        let sample =
            values.count <= Self.intensitySamples ? values : (0..<Self.intensitySamples).map { _ in values[random.below(values.count)] }
        let intensity = IntensityStatistics.of(&values)

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
            let counts = try MaskCounter.count(mask, classes: selection, seed: "foreground\n" + seed)
            channelVoxels = counts.channels
            classVoxels = counts.classes
            foreground = counts.foreground
        }
        let fingerprint = ScanFingerprint(
            scanID: scanID, aug: aug, shape: shape, dtype: dtype.numpyDescriptor, voxels: voxels, intensity: intensity,
            channelVoxels: channelVoxels, classVoxels: classVoxels, foregroundSamples: foreground.map(\.count))
        return ScanRecord(
            key: key, fingerprint: fingerprint, countedVoxels: values.count, intensitySample: sample, foreground: foreground,
            maskShape: maskShape)
    }

    /// Every element of a source as float64, chunk by chunk.
    static func doubles(of source: any TensorSource) throws(TensorError) -> [Double] {
        let dtype = source.layout.dtype
        var values: [Double] = []
        values.reserveCapacity(source.layout.elementCount)
        for chunk in 0..<source.chunkCount {
            let raw = try source.readChunk(chunk)
            let count = raw.count / dtype.size
            let start = values.count
            values.append(contentsOf: repeatElement(0, count: count))
            values.withUnsafeMutableBytes { out in
                raw.withUnsafeBytes { input in
                    Conversion.convert(input, from: dtype, into: UnsafeMutableRawBufferPointer(rebasing: out[(start * 8)...]), as: .float64)
                }
            }
        }
        return values
    }
}

extension IntensityStatistics {
    /// The statistics of `values` (NaNs already removed), or nil when there are none. Reorders
    /// `values` (the percentiles are selected in place).
    static func of(_ values: inout [Double]) -> IntensityStatistics? {
        guard !values.isEmpty else { return nil }
        var minimum = values[0]
        var maximum = values[0]
        var sum = 0.0
        for value in values {
            minimum = Swift.min(minimum, value)
            maximum = Swift.max(maximum, value)
            sum += value
        }
        let mean = sum / Double(values.count)
        var squares = 0.0
        for value in values { squares += (value - mean) * (value - mean) }
        let std = (squares / Double(values.count)).squareRoot()
        let low = Selection.percentile(&values, 0.5)
        let high = Selection.percentile(&values, 99.5)
        return IntensityStatistics(min: minimum, max: maximum, mean: mean, std: std, percentile00_5: low, percentile99_5: high)
    }
}
