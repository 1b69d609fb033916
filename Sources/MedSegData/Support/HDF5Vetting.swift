import Dispatch
public import HDF5
import Synchronization

/// libhdf5 1.10.8 (the version Debian ships) can crash the whole process on a malformed file: the
/// fuzzer found an object header that makes `H5Dopen2` read 256 MiB past a 280-byte buffer
/// (`H5O_msg_read_oh`). No check of ours can stop a crash inside the library, so before medsegd
/// opens a file with HDF5 for the first time (per version of it), a child process (`medsegd vet`)
/// first does with it everything the readers do: opens its datasets, learns their storage, reads
/// what only the library can read. If the child dies, the file is refused (422) and the server
/// lives on. Long-lived children serve the checks; each costs a pipe round trip and an HDF5
/// open, once per file version. A check that could not be made (no child could start, or it
/// timed out) is no verdict: that request is refused with 503, and the next one checks again.
public final class HDF5Vetting: Sendable {
    public static let shared = HDF5Vetting()

    /// What a check found: only `.safe` and `.refused` are verdicts on the file (remembered for
    /// its version); `.unavailable` says nothing about it, and the next request checks again.
    enum Outcome: Sendable, Equatable {
        case safe
        case refused(String)
        case unavailable(String)
    }

    /// A check under way: requests for the same file version wait for it instead of starting another.
    private final class Check: Sendable {
        let identity: FileIdentity
        private let finished = DispatchGroup()
        private let result = Mutex<Outcome?>(nil)

        init(identity: FileIdentity) {
            self.identity = identity
            finished.enter()
        }

        func finish(_ outcome: Outcome) {
            result.withLock { $0 = outcome }
            finished.leave()
        }

        func wait() -> Outcome {
            finished.wait()
            return result.withLock { $0 } ?? .unavailable("its check ended without an answer; ask again")
        }
    }

    private struct State {
        var executable: String?
        /// Children between checks. A check takes one (or starts one), so checks of different
        /// files run side by side; their number is bounded by the threads that open files.
        var idle: [VettingChild] = []
        var verdicts: [String: (identity: FileIdentity, problem: String?)] = [:]
        var inFlight: [String: Check] = [:]
    }

    private let state = Mutex(State())
    /// A file the child takes longer than this to open is not opened (HDF5 can also hang); the
    /// request is answered 503, and the file is checked again on the next one.
    let timeoutMilliseconds: Int32
    /// Children kept between checks (more are stopped when their check ends).
    private static let maxIdle = 4

    init(timeoutMilliseconds: Int32 = 20_000) {
        self.timeoutMilliseconds = timeoutMilliseconds
    }

    deinit {
        for child in state.withLock({ $0.idle }) { child.stop() }
    }

    /// Vets every file from now on with `executable vet` (the server and `medsegd check` do;
    /// tests of the core do not).
    public func enable(executable: String) {
        state.withLock { $0.executable = executable }
    }

    /// Opens `path` with HDF5 once a child process has survived doing the same with this version
    /// of it (a file replaced between the check and the open is not opened unchecked). A check
    /// that could not be made throws `.checkUnavailable`.
    public func open(_ path: String) throws(HDF5Error) -> HDF5File {
        let (identity, outcome) = check(path)
        switch outcome {
        case .safe: break
        case .refused(let problem): throw HDF5Error(.openFailed, file: path, detail: problem)
        case .unavailable(let problem): throw HDF5Error(.checkUnavailable, file: path, detail: problem)
        }
        let file = try HDF5File.open(path)
        if let identity, file.fileDescriptor.flatMap(FileIdentity.of(descriptor:)) != identity {
            throw HDF5Error(.openFailed, file: path, detail: "it changed while it was being opened; ask again")
        }
        return file
    }

    /// The version checked, and whether it may be opened in this process (`.safe` also when
    /// vetting is off, or the file is missing and opening it will say so). No lock is held while
    /// a child works: only requests for the same file version wait for it.
    func check(_ path: String) -> (FileIdentity?, Outcome) {
        guard let identity = FileIdentity.of(path) else { return (nil, .safe) }
        enum Step {
            case off
            case answered(Outcome)
            case wait(Check)
            case ask(Check, executable: String, child: VettingChild?)
        }
        let step = state.withLock { state -> Step in
            guard let executable = state.executable else { return .off }
            if let verdict = state.verdicts[path], verdict.identity == identity {
                return .answered(verdict.problem.map(Outcome.refused) ?? .safe)
            }
            if let check = state.inFlight[path], check.identity == identity { return .wait(check) }
            let check = Check(identity: identity)
            state.inFlight[path] = check
            return .ask(check, executable: executable, child: state.idle.popLast())
        }
        switch step {
        case .off:
            // Nothing was checked: no version the opened file must be.
            return (nil, .safe)
        case .answered(let outcome):
            return (identity, outcome)
        case .wait(let check):
            return (identity, check.wait())
        case .ask(let check, let executable, let child):
            let (outcome, survivor) = ask(path, executable: executable, child: child)
            var surplus: VettingChild?
            state.withLock { state in
                if state.verdicts.count > 1_000_000 { state.verdicts.removeAll(keepingCapacity: true) }
                switch outcome {
                case .safe: state.verdicts[path] = (identity, nil)
                case .refused(let problem): state.verdicts[path] = (identity, problem)
                case .unavailable: break  // no verdict: the next request asks again
                }
                if state.inFlight[path] === check { state.inFlight[path] = nil }
                if let survivor {
                    if state.idle.count < Self.maxIdle { state.idle.append(survivor) } else { surplus = survivor }
                }
            }
            surplus?.stop()
            check.finish(outcome)
            return (identity, outcome)
        }
    }

    /// One question to a child (`child`, or a new one): the outcome, and the child when it is
    /// still fit to ask again. A child that died between checks is replaced once.
    private func ask(_ path: String, executable: String, child: VettingChild?) -> (Outcome, VettingChild?) {
        guard !path.utf8.contains(0x0A), !path.utf8.contains(0) else {
            return (.refused("its path cannot be checked (a newline in it)"), child)
        }
        var child = child
        for _ in 0..<2 {
            let running: VettingChild
            if let child {
                running = child
            } else {
                do {
                    running = try VettingChild.spawn(executable)
                } catch {
                    return (.unavailable("no process to check it could be started (\(error.reason)); ask again"), nil)
                }
            }
            switch running.ask(path, timeoutMilliseconds: timeoutMilliseconds) {
            case .ok:
                return (.safe, running)
            case .died:
                return (.refused("the HDF5 library fails on this file (its check process died); it is not read"), nil)
            case .timedOut:
                let seconds = Double(timeoutMilliseconds) / 1000
                return (.unavailable("its check did not finish in \(seconds) s (the server is busy, or the file is); ask again"), nil)
            case .notDelivered:
                child = nil  // it had died before the question: ask a new one
            }
        }
        return (.unavailable("its check process stopped answering; ask again"), nil)
    }

    /// What the child does with one file: everything medsegd's readers do with HDF5 (open the
    /// datasets of every layout, learn their storage, read what only the library can read).
    /// Errors are fine (the server reports them); only a crash or a hang matters.
    public static func exercise(_ path: String) {
        guard let file = try? HDF5File.open(path) else { return }
        var keys = [ScanFileKeys.sliceData, ScanFileKeys.volume, ScanFileKeys.mask]
        if let groups = try? file.childNames() {
            for group in groups.prefix(10_000) where file.objectKind(group) == .group {
                keys += [group + "/" + ScanFileKeys.volume, group + "/" + ScanFileKeys.mask]
            }
        }
        for key in keys where file.objectKind(key) == .dataset {
            guard let dataset = try? file.dataset(key) else { continue }
            _ = dataset.unavailableFilters
            _ = dataset.hasNonZeroFill
            guard let identity = FileIdentity.of(path) else { continue }
            if StorageMap.learn(dataset, file: path, identity: identity) == nil, dataset.unavailableFilters.isEmpty,
                dataset.byteCount <= StorageMap.maxChunkBytes
            {
                _ = try? dataset.readBytes()
            }
        }
    }
}
