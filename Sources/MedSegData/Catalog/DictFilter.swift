/// `/dicts`'s filters: every given field must match.
public struct DictFilter: Sendable, Equatable {
    public var scanID: String?
    public var subjectID: Int?
    public var timePoint: Int?
    public var aug: Int?

    public init(scanID: String? = nil, subjectID: Int? = nil, timePoint: Int? = nil, aug: Int? = nil) {
        self.scanID = scanID
        self.subjectID = subjectID
        self.timePoint = timePoint
        self.aug = aug
    }

    public var isEmpty: Bool { self == DictFilter() }

    public func matches(_ dict: DatasetDict) -> Bool {
        if let scanID, dict.scanID != scanID { return false }
        if let subjectID, dict.subjectID != subjectID { return false }
        if let timePoint, dict.timePoint != timePoint { return false }
        if let aug, dict.augmentation != aug { return false }
        return true
    }
}

extension CatalogEntry {
    /// Indices of the dicts that pass `filter`, in catalog order, then paged.
    public func select(_ filter: DictFilter, offset: Int = 0, limit: Int? = nil) -> (indices: [Int], total: Int) {
        var matching: [Int]
        if filter.isEmpty {
            matching = Array(dicts.indices)
        } else if let scanID = filter.scanID, let scan = scan(scanID) {
            // A scan's items are already indexed: no pass over the whole list.
            matching = scan.volumes.flatMap(\.items).sorted().filter { filter.matches(dicts[$0]) }
        } else if filter.scanID != nil {
            matching = []
        } else {
            matching = dicts.indices.filter { filter.matches(dicts[$0]) }
        }
        let total = matching.count
        let start = min(max(offset, 0), total)
        // `start + limit` would overflow for a huge limit: compare with what is left instead.
        let end = limit.map { start + min(max($0, 0), total - start) } ?? total
        return (Array(matching[start..<end]), total)
    }
}
