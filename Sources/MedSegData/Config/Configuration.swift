/// A whole, validated configuration: the main file plus everything it includes.
public struct Configuration: Sendable, Equatable {
    public var server: ServerSettings
    /// Every dataset, sorted by name.
    public var datasets: [DatasetConfig]
    /// The files read, main file first.
    public var files: [String]

    public init(server: ServerSettings = ServerSettings(), datasets: [DatasetConfig] = [], files: [String] = []) {
        self.server = server
        self.datasets = datasets
        self.files = files
    }
}
