/// What a format's loader found in its folder or file.
struct LoadedItems {
    var dicts: [DatasetDict] = []
    /// Item-level problems: the items concerned were left out.
    var problems: [DataProblem] = []
}

/// Reads one dataset's items from disk. A thrown problem means the dataset cannot be registered.
protocol FormatLoader {
    static func load(_ config: DatasetConfig) throws(DataProblem) -> LoadedItems
}

extension DatasetFormat {
    var loader: any FormatLoader.Type {
        switch self {
        case .slices2D: Slices2DLoader.self
        case .volumes3D: Volumes3DLoader.self
        case .volumes3DSingleFile: SingleFile3DLoader.self
        case .manifest: ManifestLoader.self
        }
    }
}

extension DatasetConfig {
    /// The entries of a directory format's `scan_root`; a folder that cannot be listed leaves the
    /// dataset unregistered.
    func listScanRoot() throws(DataProblem) -> [(name: String, kind: FileSystem.EntryKind)] {
        do {
            return try FileSystem.listDirectory(location)
        } catch {
            throw DataProblem(.error, dataset: name, file: location, "cannot list scan_root: \(error.reason)")
        }
    }
}

extension Array where Element == (name: String, kind: FileSystem.EntryKind) {
    /// Sorted as Python sorts `os.listdir`: by code point, which is UTF-8 byte order.
    func sortedByName() -> Self {
        sorted { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
    }
}
