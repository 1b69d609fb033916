import Glibc
public import HDF5
import Synchronization

/// libhdf5 1.10.8 (the version Debian ships) can crash the whole process on a malformed file: the
/// fuzzer found an object header that makes `H5Dopen2` read 256 MiB past a 280-byte buffer
/// (`H5O_msg_read_oh`). No check of ours can stop a crash inside the library, so before medsegd
/// opens a file with HDF5 for the first time (per version of it), a child process (`medsegd vet`)
/// first does with it everything the readers do: opens its datasets, learns their storage, reads
/// what only the library can read. If the child dies, the file is refused (422) and the server
/// lives on. One long-lived child serves every check; each costs a pipe round trip and an HDF5
/// open, once per file version.
public final class HDF5Vetting: Sendable {
    public static let shared = HDF5Vetting()

    private struct Child {
        var pid: pid_t
        var input: Int32
        var output: Int32
    }

    private struct State {
        var executable: String?
        var child: Child?
        var verdicts: [String: (identity: FileIdentity, problem: String?)] = [:]
    }

    private let state = Mutex(State())
    /// A file the child takes longer than this to open is refused as well (HDF5 can also hang).
    static let timeoutMilliseconds: Int32 = 20_000

    /// Vets every file from now on with `executable vet` (the server and `medsegd check` do;
    /// tests of the core do not).
    public func enable(executable: String) {
        state.withLock { $0.executable = executable }
    }

    /// Opens `path` with HDF5 once a child process has survived doing the same with this version
    /// of it (a file replaced between the check and the open is not opened unchecked).
    public func open(_ path: String) throws(HDF5Error) -> HDF5File {
        let (identity, problem) = check(path)
        if let problem { throw HDF5Error(.openFailed, file: path, detail: problem) }
        let file = try HDF5File.open(path)
        if let identity, file.fileDescriptor.flatMap(FileIdentity.of(descriptor:)) != identity {
            throw HDF5Error(.openFailed, file: path, detail: "it changed while it was being opened; ask again")
        }
        return file
    }

    /// The version checked, and why it must not be opened in this process (nil: it may, or
    /// vetting is off, or the file is missing and opening it will say so).
    func check(_ path: String) -> (FileIdentity?, String?) {
        guard let identity = FileIdentity.of(path) else { return (nil, nil) }
        return state.withLock { state in
            guard let executable = state.executable else { return (nil, nil) }
            if let verdict = state.verdicts[path], verdict.identity == identity { return (identity, verdict.problem) }
            let problem = Self.ask(path, executable: executable, child: &state.child)
            if state.verdicts.count > 1_000_000 { state.verdicts.removeAll(keepingCapacity: true) }
            state.verdicts[path] = (identity, problem)
            return (identity, problem)
        }
    }

    /// One question to the child (started when there is none): nil when it opened the file and answered.
    private static func ask(_ path: String, executable: String, child: inout Child?) -> String? {
        guard !path.utf8.contains(0x0A), !path.utf8.contains(0) else { return "its path cannot be checked (a newline in it)" }
        if child == nil { child = spawn(executable) }
        guard let running = child else { return nil }  // no child could be started: serve as before
        let request = Array((path + "\n").utf8)
        var answer: [UInt8] = []
        let sent = request.withUnsafeBytes { write(running.input, $0.baseAddress, $0.count) } == request.count
        if sent {
            var poller = pollfd(fd: running.output, events: Int16(POLLIN), revents: 0)
            var byte: UInt8 = 0
            while poll(&poller, 1, timeoutMilliseconds) > 0, read(running.output, &byte, 1) == 1 {
                if byte == 0x0A { break }
                answer.append(byte)
            }
        }
        guard String(decoding: answer, as: UTF8.self) == "ok" else {
            // The child died on this file (or hung): stop it; the next question starts another.
            kill(running.pid, SIGKILL)
            var status: Int32 = 0
            waitpid(running.pid, &status, 0)
            close(running.input)
            close(running.output)
            child = nil
            return "the HDF5 library fails on this file (its check process died); it is not read"
        }
        return nil
    }

    private static func spawn(_ executable: String) -> Child? {
        var toChild: [Int32] = [0, 0]
        var fromChild: [Int32] = [0, 0]
        guard pipe(&toChild) == 0 else { return nil }
        guard pipe(&fromChild) == 0 else {
            close(toChild[0])
            close(toChild[1])
            return nil
        }
        // Only the child's ends reach the child (by dup2 onto 0 and 1), and no other process.
        for descriptor in toChild + fromChild { _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, toChild[0], 0)
        posix_spawn_file_actions_adddup2(&actions, fromChild[1], 1)
        // The child's death is the expected answer for a bad file: no crash report in the log
        // (and none of the seconds Swift's backtracer would spend writing it).
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        var pid: pid_t = 0
        let arguments = [executable, "vet"]
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var environment: [UnsafeMutablePointer<CChar>?] = [strdup("SWIFT_BACKTRACE=enable=no")]
        var index = 0
        while let variable = environ[index] {
            if !String(cString: variable).hasPrefix("SWIFT_BACKTRACE=") { environment.append(strdup(variable)) }
            index += 1
        }
        environment.append(nil)
        defer { for pointer in environment { free(pointer) } }
        let status = posix_spawn(&pid, executable, &actions, nil, &argv, &environment)
        close(toChild[0])
        close(fromChild[1])
        guard status == 0 else {
            close(toChild[1])
            close(fromChild[0])
            return nil
        }
        // A child that dies must not kill us with SIGPIPE on the next write.
        signal(SIGPIPE, SIG_IGN)
        return Child(pid: pid, input: toChild[1], output: fromChild[0])
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
