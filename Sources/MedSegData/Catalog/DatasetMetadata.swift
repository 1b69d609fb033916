/// One MetadataCatalog entry: MedSegPy's keys plus whatever extra keys the config gives.
public struct DatasetMetadata: Sendable, Equatable {
    public var scanRoot: String
    public var categories: [CategorySpec]
    public var evaluatorType: String
    /// Extra keys from the config (`spacing`, ...), in the order written.
    public var extra: JSONObject

    public init(scanRoot: String, categories: [CategorySpec], evaluatorType: String = "SemSegEvaluator", extra: JSONObject = JSONObject()) {
        self.scanRoot = scanRoot
        self.categories = categories
        self.evaluatorType = evaluatorType
        self.extra = extra
    }

    public var categoryIDs: [CategoryID] { categories.map(\.id) }

    /// The entry as MedSegPy's `MetadataCatalog.get(name)` would hold it, in JSON terms:
    /// `category_id_to_contiguous_id` becomes a list of `[id, contiguous_id]` pairs because
    /// collated ids (tuples in Python) cannot be JSON object keys.
    public var json: JSONObject {
        var object = JSONObject()
        object["scan_root"] = .string(scanRoot)
        object["category_ids"] = .array(categories.map(\.id.json))
        object["categories"] = .array(categories.map { .string($0.name) })
        let abbreviations = categories.compactMap(\.abbreviation)
        if !abbreviations.isEmpty { object["category_abbreviations"] = .array(abbreviations.map { .string($0) }) }
        let colors = categories.compactMap(\.color)
        if !colors.isEmpty { object["category_colors"] = .array(colors.map { .array($0.map { .int($0) }) }) }
        object["category_id_to_contiguous_id"] = .array(
            categories.enumerated().map { index, category in .array([category.id.json, .int(index)]) })
        object["evaluator_type"] = .string(evaluatorType)
        for (key, value) in extra.entries where object[key] == nil {
            object[key] = value
        }
        return object
    }
}
