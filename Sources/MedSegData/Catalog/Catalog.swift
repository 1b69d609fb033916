import Synchronization

/// An immutable snapshot of both catalogs, built whole from one configuration and swapped whole
/// on reload, so a request always sees one consistent catalog.
public struct Catalog: Sendable {
    public let configuration: Configuration
    /// Registered datasets by name.
    public let entries: [String: CatalogEntry]
    /// Registered names, sorted.
    public let names: [String]
    /// Everything found wrong on disk while registering (datasets with an error at dataset
    /// level are not registered).
    public let problems: [DataProblem]
    /// Distinct for every catalog this process builds: work tied to one catalog (a fingerprint
    /// pass) tells a newer one apart.
    public let generation: UInt64

    public init(configuration: Configuration, entries: [CatalogEntry], problems: [DataProblem]) {
        self.configuration = configuration
        self.entries = Dictionary(uniqueKeysWithValues: entries.map { ($0.name, $0) })
        self.names = entries.map(\.name).sorted()
        self.problems = problems
        self.generation = Catalog.generations.add(1, ordering: .relaxed).newValue
    }

    private static let generations = Atomic<UInt64>(0)

    public subscript(name: String) -> CatalogEntry? { entries[name] }

    public var itemCount: Int { entries.values.reduce(0) { $0 + $1.dicts.count } }
}
