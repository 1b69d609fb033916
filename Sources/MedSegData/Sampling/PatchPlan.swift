/// Where each patch of a sample comes from, decided before any voxel is read: the same request
/// over the same fingerprints always gives the same plan.
public struct PatchPlan: Sendable, Equatable {
    /// The scan's position in the dataset's scan list (`GET .../scans`), its id and augmentation.
    public var scanIndex: Int
    public var scanID: String
    public var aug: Int
    /// The volume's shape (`H, W, D`) and the patch's centre voxel in it.
    public var shape: [Int]
    public var center: [Int]
    /// Centred on a voxel of a sampled class (rather than uniformly at random).
    public var foreground: Bool

    /// Drawn as nnU-Net oversamples foreground: the last `round(count x foreground_fraction)` (halves to even)
    /// patches are centred on a random foreground voxel (from the index) of a random class
    /// present in their scan, among `classes`; the others, and those whose scan has none of
    /// them, on a voxel drawn uniformly. Scans are drawn uniformly.
    public static func draw(_ request: SampleRequest, entry: CatalogEntry, records: [ScanRecord]) throws(TensorError) -> [PatchPlan] {
        var positions: [String: Int] = [:]
        for (index, scan) in entry.scans.enumerated() { positions[scan.scanID] = index }
        if let unknown = request.scans?.first(where: { positions[$0] == nil }) {
            throw TensorError(.notFound, "scan '\(unknown.prefix(100))' is not in dataset '\(entry.name)'")
        }
        let wanted = request.scans.map(Set.init)
        let volumes = records.filter { (wanted?.contains($0.key.scanID) ?? true) && $0.isConsistent && $0.fingerprint.shape.allSatisfy { $0 > 0 } }
            .sorted { (positions[$0.key.scanID] ?? 0, $0.key.aug) < (positions[$1.key.scanID] ?? 0, $1.key.aug) }
        guard !volumes.isEmpty else {
            throw TensorError(
                .unprocessable, "dataset '\(entry.name)' has no readable volume to sample from\(wanted == nil ? "" : " among the scans given")")
        }
        // Classes are positions in the request's categories (the dataset's by default).
        let groups = (request.options.categories?.ids ?? entry.metadata.categoryIDs).map(\.channels)
        let classes = Array(Set(request.classes ?? Array(groups.indices))).sorted()
        if let bad = classes.first(where: { $0 >= groups.count }) {
            throw TensorError(.invalidRequest, "'classes' names class \(bad); there are \(groups.count) (0...\(groups.count - 1))")
        }
        // Per volume, the classes present (a channel of theirs has indexed voxels): worked out
        // once, so that a draw costs the same whatever the request lists.
        var present: [[Int]?] = Array(repeating: nil, count: volumes.count)
        var random = SeededRandom(seed: request.seed)
        // Python's round(): halves to even.
        let foregroundCount = Int((Double(request.count) * request.foregroundFraction).rounded(.toNearestOrEven))
        var plans: [PatchPlan] = []
        plans.reserveCapacity(request.count)
        for index in 0..<request.count {
            let position = random.below(volumes.count)
            let record = volumes[position]
            let shape = record.fingerprint.shape
            var center: [Int]?
            if index >= request.count - foregroundCount {
                if present[position] == nil {
                    present[position] = classes.filter { k in groups[k].contains { $0 < record.foreground.count && !record.foreground[$0].isEmpty } }
                }
                center = foregroundVoxel(record, present: present[position] ?? [], groups: groups, random: &random)
            }
            let chosen = center ?? shape.map { random.below(max($0, 1)) }
            plans.append(
                PatchPlan(
                    scanIndex: positions[record.key.scanID] ?? 0, scanID: record.key.scanID, aug: record.key.aug, shape: shape, center: chosen,
                    foreground: center != nil))
        }
        return plans
    }

    /// A voxel of a class present in the volume, drawn from its channels' index (a channel's
    /// share is its share of the indexed voxels), or nil when none of the classes is `present`.
    private static func foregroundVoxel(_ record: ScanRecord, present: [Int], groups: [[Int]], random: inout SeededRandom) -> [Int]? {
        guard !present.isEmpty, !record.maskShape.isEmpty else { return nil }
        let channels = groups[present[random.below(present.count)]].filter { $0 < record.foreground.count }
        let total = channels.reduce(0) { $0 + record.foreground[$1].count }
        var pick = random.below(total)
        for channel in channels {
            let voxels = record.foreground[channel]
            if pick < voxels.count { return record.maskShape.unravel(Int(voxels[pick])) }
            pick -= voxels.count
        }
        return nil
    }
}
