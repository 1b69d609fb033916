import Glibc
public import Logging
public import MedSegData
import Metrics
import NIOPosix
import Synchronization

/// Every dataset's fingerprint and foreground index. Each catalog (the first load, every reload)
/// starts a background pass on a thread of its own, so serving keeps the blocking pool: volumes
/// whose files and categories are unchanged are taken from the previous pass or from the state
/// directory, the others computed; each dataset is saved when done. A newer catalog stops an
/// older pass.
public final class FingerprintService: Sendable {
    public enum Status: Sendable {
        case ready(DatasetFingerprint, records: [ScanRecord])
        /// Volumes done of the dataset's total.
        case pending(done: Int, total: Int)
    }

    private struct State {
        var generation: UInt64?
        var datasets: [String: Status] = [:]
        /// Volumes a pass has done so far, kept when a newer catalog stops it: the next pass
        /// reuses those whose files are unchanged, so frequent reloads still make progress.
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

    /// The dataset's fingerprint, or its progress. A catalog this service has not seen yet (a
    /// reload, or a test's store) starts its pass.
    public func status(of entry: CatalogEntry, in catalog: Catalog) -> Status {
        start(catalog)
        return state.withLock { $0.datasets[entry.name] } ?? .pending(done: 0, total: Self.volumeCount(entry))
    }

    /// Starts the pass for `catalog` unless it is the one already started.
    public func start(_ catalog: Catalog) {
        let previous: [String: [ScanRecord]]? = state.withLock { state in
            guard state.generation != catalog.generation else { return nil }
            state.generation = catalog.generation
            var previous = state.partial
            for (name, status) in state.datasets {
                if case .ready(_, let records) = status { previous[name] = records }
            }
            state.datasets = Dictionary(
                uniqueKeysWithValues: catalog.names.map { ($0, Status.pending(done: 0, total: Self.volumeCount(catalog[$0]!))) })
            return previous
        }
        guard let previous else { return }
        Self.worker.submit { [self] _ in run(catalog, previous: previous) }
    }

    private func isCurrent(_ catalog: Catalog) -> Bool {
        state.withLock { $0.generation == catalog.generation }
    }

    private func run(_ catalog: Catalog, previous: [String: [ScanRecord]]) {
        for name in catalog.names {
            guard isCurrent(catalog), let entry = catalog[name] else { return }
            let started = ContinuousClock.now
            let computer = FingerprintComputer(reader: TensorReader(entry: entry))
            let known = (previous[name] ?? archive?.load(name) ?? [])
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
                    guard isCurrent(catalog) else { return }
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
                        state.partial[name] = records
                        guard state.generation == catalog.generation else { return }
                        state.datasets[name] = .pending(done: records.count + failed, total: total)
                    }
                }
            }
            let fingerprint = DatasetFingerprint.aggregate(entry, records: records)
            let installed = state.withLock { state in
                guard state.generation == catalog.generation else { return false }
                state.datasets[name] = .ready(fingerprint, records: records)
                state.partial[name] = nil
                return true
            }
            guard installed else { return }
            if computed > 0, let archive {
                do {
                    try archive.save(name, records: records)
                } catch {
                    logger.error("fingerprint not saved", metadata: ["dataset": "\(name)", "error": "\(error)"])
                }
            }
            let elapsed = ContinuousClock.now - started
            logger.info(
                "fingerprint ready",
                metadata: [
                    "dataset": "\(name)", "volumes": "\(records.count)", "computed": "\(computed)", "reused": "\(records.count - computed)",
                    "skipped": "\(failed)", "seconds": "\(elapsed.components.seconds)",
                ])
        }
    }

    private static func volumeCount(_ entry: CatalogEntry) -> Int {
        entry.scans.reduce(0) { $0 + $1.volumes.count }
    }
}
