public import Logging

/// Registers every configured dataset: runs each format's loader and builds the snapshot.
/// Blocking (directory scans, HDF5 reads): call it off the event loops.
public enum CatalogLoader {
    /// The folders its files may come from: the scan root; the single file itself; a manifest's
    /// folder and the dataset's `roots`.
    static func roots(of config: DatasetConfig) -> DataRoots {
        switch config.format {
        case .slices2D, .volumes3D, .volumes3DSingleFile: DataRoots([config.location])
        case .manifest: DataRoots([Paths.directory(of: config.location)] + config.roots)
        }
    }

    public static func load(_ configuration: Configuration, logger: Logger) -> Catalog {
        var entries: [CatalogEntry] = []
        var problems: [DataProblem] = []
        for config in configuration.datasets {
            let started = ContinuousClock.now
            do {
                let loaded = try config.format.loader.load(config)
                problems += loaded.problems
                let entry = CatalogEntry(
                    name: config.name, format: config.format, dicts: loaded.dicts, metadata: metadata(for: config),
                    roots: roots(of: config))
                entries.append(entry)
                for problem in loaded.problems {
                    logger.log(level: problem.severity == .error ? .error : .warning, "\(problem)")
                }
                logger.info(
                    "registered dataset",
                    metadata: [
                        "dataset": "\(config.name)", "format": "\(config.format.rawValue)", "items": "\(entry.dicts.count)",
                        "scans": "\(entry.scans.count)", "subjects": "\(entry.numSubjects)",
                        "seconds": "\(Self.seconds(since: started))", "from": "\(config.location)",
                    ])
            } catch {
                problems.append(error)
                logger.error("dataset not registered: \(error)")
            }
        }
        let hygiene = SplitHygiene.problems(entries, configs: configuration.datasets)
        for problem in hygiene { logger.warning("\(problem)") }
        return Catalog(configuration: configuration, entries: entries, problems: problems + hygiene)
    }

    static func metadata(for config: DatasetConfig) -> DatasetMetadata {
        DatasetMetadata(
            scanRoot: config.location, categories: config.categories, evaluatorType: config.evaluatorType,
            extra: config.extraMetadata)
    }

    private static func seconds(since start: ContinuousClock.Instant) -> String {
        let duration = ContinuousClock.now - start
        let seconds = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        return String(Double(Int(seconds * 1000)) / 1000)
    }
}
