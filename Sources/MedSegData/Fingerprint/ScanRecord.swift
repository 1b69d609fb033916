import FoundationEssentials
internal import HDF5

/// What a scan's fingerprint was computed from: where its arrays live (format, files, groups),
/// its files' versions and the dataset's categories. A record whose key still matches is reused
/// after a restart or a reload, and sampling checks it again against the files it reads.
public struct ScanKey: Codable, Sendable, Equatable {
    public var scanID: String
    public var aug: Int
    /// `TensorReader.storageDescription` of the volume's items: a manifest edit that points a
    /// scan at another group of the same file changes it.
    public var storage: String
    /// `path identity` of every file read, in order.
    public var files: [String]
    public var categories: String

    public init(scanID: String, aug: Int, storage: String, files: [String], categories: String) {
        self.scanID = scanID
        self.aug = aug
        self.storage = storage
        self.files = files
        self.categories = categories
    }
}

/// One volume's fingerprint with what the dataset aggregate and the sample route need: the
/// voxels counted, a seeded intensity sample and the foreground index. Persisted as JSON, the
/// samples as base64 of little-endian numbers.
public struct ScanRecord: Codable, Sendable {
    public var key: ScanKey
    public var fingerprint: ScanFingerprint
    /// Voxels that are not NaN (the statistics' count).
    public var countedVoxels: Int
    /// Up to `FingerprintComputer.intensitySamples` voxel values (float64: exact for every dtype),
    /// drawn with a seeded generator.
    public var intensitySample: [Double]
    /// Per stored channel, linear indices (C order over the mask's spatial shape) of a seeded
    /// sample of the voxels where it is set.
    public var foreground: [[UInt32]]
    /// The mask's spatial shape the indices refer to (empty when unlabeled).
    public var maskShape: [Int]

    public init(
        key: ScanKey, fingerprint: ScanFingerprint, countedVoxels: Int, intensitySample: [Double], foreground: [[UInt32]], maskShape: [Int]
    ) {
        self.key = key
        self.fingerprint = fingerprint
        self.countedVoxels = countedVoxels
        self.intensitySample = intensitySample
        self.foreground = foreground
        self.maskShape = maskShape
    }

    /// Whether it describes a volume the sampler can read: `H x W x D` with no negative side, a
    /// mask of that shape, foreground indices inside it, no negative count. Archived records
    /// are checked before use: the state directory is trusted no more than a data file.
    public var isConsistent: Bool {
        let shape = fingerprint.shape
        guard shape.count == 3, shape.allSatisfy({ $0 >= 0 }), let voxels = shape.checkedProduct, fingerprint.voxels == voxels,
            maskShape.isEmpty || maskShape == shape, countedVoxels >= 0, countedVoxels <= voxels,
            (fingerprint.channelVoxels + fingerprint.classVoxels).allSatisfy({ $0 >= 0 && $0 <= voxels })
        else { return false }
        return foreground.allSatisfy { $0.allSatisfy { Int($0) < voxels } } && (maskShape.isEmpty ? foreground.allSatisfy(\.isEmpty) : true)
    }

    enum CodingKeys: String, CodingKey {
        case key, fingerprint
        case countedVoxels = "counted_voxels"
        case intensitySample = "intensity_sample"
        case foreground
        case maskShape = "mask_shape"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        key = try container.decode(ScanKey.self, forKey: .key)
        fingerprint = try container.decode(ScanFingerprint.self, forKey: .fingerprint)
        countedVoxels = try container.decode(Int.self, forKey: .countedVoxels)
        maskShape = try container.decode([Int].self, forKey: .maskShape)
        intensitySample = try Self.numbers(container.decode(String.self, forKey: .intensitySample), as: UInt64.self).map(Double.init(bitPattern:))
        foreground = try container.decode([String].self, forKey: .foreground).map { try Self.numbers($0, as: UInt32.self) }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(key, forKey: .key)
        try container.encode(fingerprint, forKey: .fingerprint)
        try container.encode(countedVoxels, forKey: .countedVoxels)
        try container.encode(maskShape, forKey: .maskShape)
        try container.encode(Self.base64(intensitySample.map(\.bitPattern)), forKey: .intensitySample)
        try container.encode(foreground.map(Self.base64), forKey: .foreground)
    }

    private static func base64<Number: FixedWidthInteger>(_ values: [Number]) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(values.count * Number.bitWidth / 8)
        for value in values { withUnsafeBytes(of: value.littleEndian) { bytes += $0 } }
        return Data(bytes).base64EncodedString()
    }

    private static func numbers<Number: FixedWidthInteger>(_ text: String, as: Number.Type) throws -> [Number] {
        let size = Number.bitWidth / 8
        guard let data = Data(base64Encoded: text), data.count % size == 0 else {
            throw DecodingError.dataCorrupted(DecodingError.Context(codingPath: [], debugDescription: "not base64 of \(Number.bitWidth)-bit numbers"))
        }
        let bytes = [UInt8](data)
        return stride(from: 0, to: bytes.count, by: size).map { at in
            (0..<size).reduce(Number.zero) { $0 | Number(bytes[at + $1]) << ($1 * 8) }
        }
    }
}
