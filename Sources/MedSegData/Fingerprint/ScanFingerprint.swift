/// Intensity statistics of an image volume, NaNs left out (NumPy's `nanmin`, `nanmean`,
/// `nanstd`, `nanpercentile` with its default linear interpolation, computed in float64).
public struct IntensityStatistics: Codable, Sendable, Equatable {
    public var min: Double
    public var max: Double
    public var mean: Double
    public var std: Double
    public var percentile00_5: Double
    public var percentile99_5: Double

    enum CodingKeys: String, CodingKey {
        case min, max, mean, std
        case percentile00_5 = "percentile_00_5"
        case percentile99_5 = "percentile_99_5"
    }
}

/// What `GET .../scans/{id}/fingerprint` says of one volume (a scan at one augmentation).
public struct ScanFingerprint: Codable, Sendable, Equatable {
    public var scanID: String
    public var aug: Int
    /// The image volume's shape (2D scans: slices stacked, `H x W x D`).
    public var shape: [Int]
    public var dtype: String
    public var voxels: Int
    /// Nil when every voxel is NaN.
    public var intensity: IntensityStatistics?
    /// Voxels where each stored mask channel is non-zero (empty when unlabeled).
    public var channelVoxels: [Int]
    /// Voxels where each collated class (the dataset's `category_ids`) is non-zero.
    public var classVoxels: [Int]
    /// Foreground voxels sampled per stored channel for the sample route (at most
    /// `FingerprintComputer.foregroundSamplesPerChannel` each).
    public var foregroundSamples: [Int]

    public init(
        scanID: String, aug: Int, shape: [Int], dtype: String, voxels: Int, intensity: IntensityStatistics?, channelVoxels: [Int],
        classVoxels: [Int], foregroundSamples: [Int]
    ) {
        self.scanID = scanID
        self.aug = aug
        self.shape = shape
        self.dtype = dtype
        self.voxels = voxels
        self.intensity = intensity
        self.channelVoxels = channelVoxels
        self.classVoxels = classVoxels
        self.foregroundSamples = foregroundSamples
    }

    enum CodingKeys: String, CodingKey {
        case scanID = "scan_id"
        case aug, shape, dtype, voxels, intensity
        case channelVoxels = "channel_voxels"
        case classVoxels = "class_voxels"
        case foregroundSamples = "foreground_samples"
    }
}

/// What `GET .../fingerprint` says of a dataset: its scans' fingerprints and their aggregate.
public struct DatasetFingerprint: Codable, Sendable, Equatable {
    public struct ShapeRange: Codable, Sendable, Equatable {
        public var min: [Int]
        public var max: [Int]
    }

    public var dataset: String
    /// The metadata's `spacing`, when it has one.
    public var spacing: [Double]?
    /// The collated classes counted in `class_voxels`, as `category_ids` lists them (JSON: a
    /// channel number or a list of them, e.g. `[0, [1, 2]]`).
    public var classes: [CategoryID]
    public var volumes: Int
    public var voxels: Int
    /// Per axis, over volumes of one rank (nil when ranks differ).
    public var shapes: ShapeRange?
    public var dtypes: [String]
    /// min, max, mean and std over every voxel; the percentiles over a seeded sample of up to
    /// `FingerprintComputer.intensitySamples` voxels per volume (exact when volumes are smaller).
    public var intensity: IntensityStatistics?
    public var channelVoxels: [Int]
    public var classVoxels: [Int]
    public var scans: [ScanFingerprint]

    enum CodingKeys: String, CodingKey {
        case dataset, spacing, classes, volumes, voxels, shapes, dtypes, intensity
        case channelVoxels = "channel_voxels"
        case classVoxels = "class_voxels"
        case scans
    }
}
