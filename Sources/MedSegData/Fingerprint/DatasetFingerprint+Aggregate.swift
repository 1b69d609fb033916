extension DatasetFingerprint {
    /// The dataset's fingerprint from its volumes' records.
    public static func aggregate(_ entry: CatalogEntry, records: [ScanRecord]) -> DatasetFingerprint {
        let scans = records.map(\.fingerprint)
        let spacing = entry.metadata.extra["spacing"]?.arrayValue?.compactMap { value -> Double? in
            if case .number(let text) = value { return Double(text) }
            return nil
        }
        let rank = scans.first?.shape.count
        var shapes: ShapeRange?
        if let rank, scans.allSatisfy({ $0.shape.count == rank }) {
            shapes = ShapeRange(
                min: (0..<rank).map { axis in scans.map { $0.shape[axis] }.min()! },
                max: (0..<rank).map { axis in scans.map { $0.shape[axis] }.max()! })
        }
        return DatasetFingerprint(
            dataset: entry.name, spacing: spacing, classes: entry.metadata.categoryIDs, volumes: scans.count,
            voxels: scans.reduce(0) { $0.addingSaturating($1.voxels) }, shapes: shapes, dtypes: Array(Set(scans.map(\.dtype))).sorted(),
            intensity: pooledIntensity(records), channelVoxels: elementwiseSum(scans.map(\.channelVoxels)),
            classVoxels: elementwiseSum(scans.map(\.classVoxels)), scans: scans)
    }

    /// min, max, mean and std pooled exactly from the volumes' own; percentiles over their samples.
    private static func pooledIntensity(_ records: [ScanRecord]) -> IntensityStatistics? {
        let counted = records.filter { $0.fingerprint.intensity != nil && $0.countedVoxels > 0 }
        guard !counted.isEmpty else { return nil }
        let total = Double(counted.reduce(0) { $0.addingSaturating($1.countedVoxels) })
        var mean = 0.0
        var squares = 0.0
        for record in counted {
            let stats = record.fingerprint.intensity!
            let weight = Double(record.countedVoxels) / total
            mean += weight * stats.mean
            squares += weight * (stats.std * stats.std + stats.mean * stats.mean)
        }
        var sample = counted.flatMap(\.intensitySample).filter { !$0.isNaN }
        guard !sample.isEmpty else { return nil }
        return IntensityStatistics(
            min: counted.map { $0.fingerprint.intensity!.min }.min()!, max: counted.map { $0.fingerprint.intensity!.max }.max()!, mean: mean,
            std: (squares - mean * mean).isNaN ? .nan : max(0, squares - mean * mean).squareRoot(),
            percentile00_5: Selection.percentile(&sample, 0.5),
            percentile99_5: Selection.percentile(&sample, 99.5))
    }

    /// Sums lists position by position; lists of different lengths (mixed channel counts) give none.
    private static func elementwiseSum(_ lists: [[Int]]) -> [Int] {
        let labeled = lists.filter { !$0.isEmpty }
        guard let first = labeled.first, labeled.allSatisfy({ $0.count == first.count }) else { return [] }
        return labeled.dropFirst().reduce(first) { zip($0, $1).map { $0.addingSaturating($1) } }
    }
}
