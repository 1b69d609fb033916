import Glibc
public import Logging
public import MedSegData
import Metrics
import NIOPosix
import Synchronization

/// Every dataset's fingerprint and foreground index. Each catalog (the first load, every reload)
/// starts a background pass on a thread of its own, so serving keeps the blocking pool: volumes
/// whose files, groups and categories are unchanged are taken from the previous pass or from the
/// state directory, the others computed; each dataset is saved when done.
///
/// A reload keeps serving every ready fingerprint whose categories it did not change while the
/// new pass re-checks it (sampling checks each volume's files again before reading, so nothing
/// stale is sent meanwhile). Only a newer catalog replaces the one in use: a request still
/// holding an older snapshot cannot start that snapshot's pass again.
public final class FingerprintService: Sendable {
    public enum Status: Sendable {
        case ready(DatasetFingerprint, records: [ScanRecord])
        /// Volumes done of the dataset's total.
        case pending(done: Int, total: Int)
    }

    private struct State {
        /// The newest catalog started.
        var generation: UInt64?
        /// Bumped by every pass started (a new catalog, or a recomputation): older passes stop.
        var run: UInt64 = 0
        var datasets: [String: Status] = [:]
        /// The volumes (`Self.volumes`) of the entry each dataset's status was made for.
        var volumes: [String: Set<String>] = [:]
        /// Volumes a pass has done so far, kept when a newer pass stops it: the next pass reuses
        /// those whose files are unchanged, so frequent reloads still make progress.
        var partial: [String: [ScanRecord]] = [:]
    }

    private let state = Mutex(State())
    private let archive: FingerprintArchive?
    private let logger: Logger
    /// One thread for every pass of the process, at a lower priority (nice 10): passes are
    /// background work, and requests go first on a busy machine (Linux: `who` 0 is this thread).
    private static let worker: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
        pool.submit { _ in _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 10) }
        return pool
    }()

    /// `stateDirectory`: where fingerprints persist (nil: memory only).
    public init(stateDirectory: String?, logger: Logger) {
        self.archive = stateDirectory.map(FingerprintArchive.init(stateDirectory:))
        self.logger = logger
    }

    /// The dataset's fingerprint, or its progress. A catalog newer than any this service has seen
    /// (a reload, or a test's store) starts its pass.
    public func status(of entry: CatalogEntry, in catalog: Catalog) -> Status {
        start(catalog)
        return state.withLock { $0.datasets[entry.name] } ?? .pending(done: 0, total: Self.volumeCount(entry))
    }

    /// Starts the pass for `catalog` unless it is not newer than the one already started.
    public func start(_ catalog: Catalog) {
        let started: (previous: [String: [ScanRecord]], run: UInt64)? = state.withLock { state in
            if let generation = state.generation, catalog.generation <= generation { return nil }
            state.generation = catalog.generation
            state.run += 1
            let previous = Self.knownRecords(state)
            var datasets: [String: Status] = [:]
            for name in catalog.names {
                let entry = catalog[name]!
                // Ready results stay in service unless the classes they count or the volumes they
                // cover changed (a removed scan must never be sampled, an added one waits).
                if case .ready(_, let records)? = state.datasets[name], state.volumes[name] == Self.volumes(entry),
                    records.allSatisfy({ $0.key.categories == CategorySelection(entry.metadata.categoryIDs).description })
                {
                    datasets[name] = state.datasets[name]
                } else {
                    datasets[name] = .pending(done: 0, total: Self.volumeCount(entry))
                }
            }
            state.datasets = datasets
            state.volumes = state.volumes.filter { datasets[$0.key] != nil }
            state.partial = state.partial.filter { datasets[$0.key] != nil }
            return (previous, state.run)
        }
        guard let started else { return }
        Self.worker.submit { [self] _ in run(catalog, previous: started.previous, run: started.run) }
    }

    /// Recomputes `dataset` of the catalog in use (a volume's files changed without a reload):
    /// it is pending until done; its unchanged volumes are reused.
    public func recompute(_ catalog: Catalog, dataset: String) {
        let started: (previous: [String: [ScanRecord]], run: UInt64)? = state.withLock { state in
            guard state.generation == catalog.generation, let entry = catalog[dataset] else { return nil }
            // Already being recomputed: that pass will see the change.
            if case .pending? = state.datasets[dataset] { return nil }
            let previous = Self.knownRecords(state)
            state.datasets[dataset] = .pending(done: 0, total: Self.volumeCount(entry))
            state.run += 1
            return (previous, state.run)
        }
        guard let started else { return }
        logger.info("fingerprint recomputed: files changed since it was computed", metadata: ["dataset": "\(dataset)"])
        Self.worker.submit { [self] _ in run(catalog, previous: started.previous, run: started.run) }
    }

    /// Records of ready datasets and of unfinished passes, by dataset.
    private static func knownRecords(_ state: State) -> [String: [ScanRecord]] {
        var previous = state.partial
        for (name, status) in state.datasets {
            if case .ready(_, let records) = status { previous[name] = records }
        }
        return previous
    }

    private func isCurrent(_ run: UInt64) -> Bool {
        state.withLock { $0.run == run }
    }

    private func run(_ catalog: Catalog, previous: [String: [ScanRecord]], run: UInt64) {
        // Datasets nobody can sample yet first; then the ready ones are checked again.
        let waiting = state.withLock { state in Set(catalog.names.filter { state.datasets[$0].map(Self.isPending) ?? true }) }
        let pendingFirst = catalog.names.filter { waiting.contains($0) } + catalog.names.filter { !waiting.contains($0) }
        for name in pendingFirst {
            guard isCurrent(run), let entry = catalog[name] else { return }
            let started = ContinuousClock.now
            guard let (records, computed, skipped) = pass(entry, known: previous[name] ?? archive?.load(name) ?? [], run: run) else { return }
            let fingerprint = DatasetFingerprint.aggregate(entry, records: records)
            let installed = state.withLock { state in
                guard state.run == run else { return false }
                state.datasets[name] = .ready(fingerprint, records: records)
                state.volumes[name] = Self.volumes(entry)
                state.partial[name] = nil
                return true
            }
            guard installed else { return }
            // Logged once installed: whoever reads the line and asks gets this fingerprint.
            logger.info(
                "fingerprint ready",
                metadata: [
                    "dataset": "\(name)", "volumes": "\(records.count)", "computed": "\(computed)", "reused": "\(records.count - computed)",
                    "skipped": "\(skipped)", "seconds": "\((ContinuousClock.now - started).components.seconds)",
                ])
            if computed > 0, let archive {
                do {
                    try archive.save(name, records: records)
                } catch {
                    logger.error("fingerprint not saved", metadata: ["dataset": "\(name)", "error": "\(error)"])
                }
            }
        }
    }

    private static func isPending(_ status: Status) -> Bool {
        if case .pending = status { return true }
        return false
    }

    /// One dataset's records, reusing `known` ones whose key still matches; nil when a newer
    /// pass took over. Progress shows in the status (unless a ready result stays in service).
    private func pass(_ entry: CatalogEntry, known: [ScanRecord], run: UInt64) -> (records: [ScanRecord], computed: Int, skipped: Int)? {
        let name = entry.name
        let computer = FingerprintComputer(reader: TensorReader(entry: entry))
        var reusable: [String: ScanRecord] = [:]
        for record in known { reusable["\(record.key.scanID)\n\(record.key.aug)"] = record }
        let total = Self.volumeCount(entry)
        let done = Gauge(label: "medsegd_fingerprint_volumes_done", dimensions: [("dataset", name)])
        Gauge(label: "medsegd_fingerprint_volumes", dimensions: [("dataset", name)]).record(total)
        var records: [ScanRecord] = []
        var computed = 0
        var failed = 0
        for scan in entry.scans {
            for volume in scan.volumes {
                guard isCurrent(run) else { return nil }
                do throws(TensorError) {
                    let key = try computer.key(scanID: scan.scanID, aug: volume.aug)
                    if let old = reusable["\(scan.scanID)\n\(volume.aug)"], old.key == key, old.isConsistent {
                        records.append(old)
                    } else {
                        records.append(try computer.compute(scanID: scan.scanID, aug: volume.aug))
                        computed += 1
                    }
                } catch {
                    failed += 1
                    logger.warning(
                        "fingerprint skips a volume",
                        metadata: ["dataset": "\(name)", "scan": "\(scan.scanID)", "aug": "\(volume.aug)", "error": "\(error)"])
                }
                done.record(records.count + failed)
                state.withLock { state in
                    guard state.run == run else { return }
                    state.partial[name] = records
                    if case .pending? = state.datasets[name] { state.datasets[name] = .pending(done: records.count + failed, total: total) }
                }
            }
        }
        return (records, computed, failed)
    }

    /// Every volume of the entry, as `aug scan-id`.
    private static func volumes(_ entry: CatalogEntry) -> Set<String> {
        Set(entry.scans.flatMap { scan in scan.volumes.map { "\($0.aug) \(scan.scanID)" } })
    }

    private static func volumeCount(_ entry: CatalogEntry) -> Int {
        entry.scans.reduce(0) { $0 + $1.volumes.count }
    }
}
