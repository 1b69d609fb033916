/// One dataset as configured: everything needed to register it, already validated.
public struct DatasetConfig: Sendable, Equatable {
    public var name: String
    public var family: String
    public var format: DatasetFormat
    /// Absolute `scan_root` (directory formats) or `path` (single file, manifest).
    public var location: String
    public var categories: [CategorySpec]
    public var evaluatorType: String
    /// Extra metadata keys: the family's, overridden key by key by the dataset's.
    public var extraMetadata: JSONObject
    /// Folders a manifest's paths may point into, besides the manifest's own folder.
    public var roots: [String]
    /// Where it was configured, for error messages (`datasets.d/oai.yaml:12`).
    public var source: ConfigLocation

    public init(
        name: String, family: String, format: DatasetFormat, location: String, categories: [CategorySpec],
        evaluatorType: String = "SemSegEvaluator", extraMetadata: JSONObject = JSONObject(), roots: [String] = [],
        source: ConfigLocation
    ) {
        self.name = name
        self.family = family
        self.format = format
        self.location = location
        self.categories = categories
        self.evaluatorType = evaluatorType
        self.extraMetadata = extraMetadata
        self.roots = roots
        self.source = source
    }
}

/// A place in a config file.
public struct ConfigLocation: Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var line: Int?

    public init(file: String, line: Int? = nil) {
        self.file = file
        self.line = line
    }

    public var description: String { line.map { "\(file):\($0)" } ?? file }
}
