/// One registered dataset: its DatasetCatalog list and its MetadataCatalog entry together.
public struct CatalogEntry: Sendable {
    public let name: String
    public let format: DatasetFormat
    /// What MedSegPy's `DatasetCatalog.get(name)` returns, in order.
    public let dicts: [DatasetDict]
    /// What MedSegPy's `MetadataCatalog.get(name)` holds.
    public let metadata: DatasetMetadata
    /// Sorted by `scan_id`.
    public let scans: [ScanSummary]
    public let numSubjects: Int
    /// Where its files may be read from; nothing else is ever opened for it.
    public let roots: DataRoots
    private let scanPositions: [String: Int]

    public init(name: String, format: DatasetFormat, dicts: [DatasetDict], metadata: DatasetMetadata, roots: DataRoots) {
        self.name = name
        self.format = format
        self.roots = roots
        self.dicts = dicts
        self.metadata = metadata
        self.scans = ScanSummary.summarize(dicts)
        self.numSubjects = Set(dicts.compactMap(\.subjectID)).count
        self.scanPositions = Dictionary(uniqueKeysWithValues: scans.enumerated().map { ($1.scanID, $0) })
    }

    public func scan(_ scanID: String) -> ScanSummary? {
        scanPositions[scanID].map { scans[$0] }
    }

    /// The numbers `/v1/datasets` lists.
    public var summary: JSONObject {
        JSONObject([
            ("name", .string(name)),
            ("format", .string(format.rawValue)),
            ("num_items", .int(dicts.count)),
            ("num_scans", .int(scans.count)),
            ("num_subjects", .int(numSubjects)),
        ])
    }
}
