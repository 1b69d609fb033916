/// One scan of a dataset, as `/scans` lists it: its volumes by augmentation and where their
/// items lie in the dict list.
public struct ScanSummary: Sendable, Equatable {
    public var scanID: String
    public var subjectID: Int?
    public var timePoint: Int?
    /// Sorted by `aug`.
    public var volumes: [ScanVolume]
}

/// One augmentation of a scan.
public struct ScanVolume: Sendable, Equatable {
    public var aug: Int
    /// 2D: slices found on disk; 3D: the volume's depth.
    public var numSlices: Int
    /// Indices of its items in the dict list; 2D slices in slice order.
    public var items: [Int]

    public init(aug: Int, numSlices: Int, items: [Int]) {
        self.aug = aug
        self.numSlices = numSlices
        self.items = items
    }

    public var firstItem: Int { items.min() ?? 0 }
    public var lastItem: Int { items.max() ?? 0 }
}

extension ScanSummary {
    /// Groups dicts by `scan_id` (dicts without one are not part of any scan).
    static func summarize(_ dicts: [DatasetDict]) -> [ScanSummary] {
        struct Builder {
            var summary: ScanSummary
            var volumes: [Int: [Int]] = [:]
        }
        var builders: [String: Builder] = [:]
        for (index, dict) in dicts.enumerated() {
            guard let scanID = dict.scanID else { continue }
            builders[
                scanID,
                default: Builder(
                    summary: ScanSummary(
                        scanID: scanID, subjectID: dict.subjectID, timePoint: dict.timePoint, volumes: []))
            ]
            .volumes[dict.augmentation, default: []].append(index)
        }
        return builders.values.map { builder in
            var summary = builder.summary
            summary.volumes = builder.volumes.keys.sorted().map { aug in
                var items = builder.volumes[aug]!
                let isVolumeFile = items.count == 1 && dicts[items[0]].sliceID == nil
                if !isVolumeFile {
                    items.sort { (dicts[$0].sliceID ?? 0, $0) < (dicts[$1].sliceID ?? 0, $1) }
                }
                let depth = isVolumeFile ? (dicts[items[0]].imageSize.flatMap { $0.count >= 3 ? $0[2] : nil } ?? 1) : items.count
                return ScanVolume(aug: aug, numSlices: depth, items: items)
            }
            return summary
        }.sorted { $0.scanID.utf8.lexicographicallyPrecedes($1.scanID.utf8) }
    }
}
