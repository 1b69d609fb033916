import Glibc
import Synchronization

/// One `medsegd vet` process of `HDF5Vetting`: it reads file paths, one a line, and answers `ok`
/// once it has opened each with HDF5; if the library crashes on a file, it dies instead of the
/// server. Used by one check at a time (the vetting hands it out and takes it back).
struct VettingChild: Sendable {
    /// How one question ended.
    enum Answer: Equatable {
        /// The child opened the file and survived.
        case ok
        /// The child died on the file (or answered nonsense): a verdict on the file.
        case died
        /// No answer in time: the child is stopped, and nothing is known about the file.
        case timedOut
        /// The question never reached the child (it had died before): nothing is known about the file.
        case notDelivered
    }

    /// Why no child could be started (for the error the request gets).
    struct SpawnFailure: Error {
        var reason: String
    }

    let pid: pid_t
    private let input: Int32
    private let output: Int32

    private init(pid: pid_t, input: Int32, output: Int32) {
        self.pid = pid
        self.input = input
        self.output = output
    }

    /// Asks about one file (a path without newline or NUL), waiting at most `timeoutMilliseconds`
    /// for the answer. After anything but `.ok` the child is stopped and must not be used again.
    func ask(_ path: String, timeoutMilliseconds: Int32) -> Answer {
        let request = Array((path + "\n").utf8)
        let sent = request.withUnsafeBytes { write(input, $0.baseAddress, $0.count) }
        guard sent == request.count else {
            stop()
            return .notDelivered
        }
        var deadline = timespec()
        clock_gettime(CLOCK_MONOTONIC, &deadline)
        let end = Int64(deadline.tv_sec) * 1000 + Int64(deadline.tv_nsec) / 1_000_000 + Int64(timeoutMilliseconds)
        var answer: [UInt8] = []
        var byte: UInt8 = 0
        while true {
            var now = timespec()
            clock_gettime(CLOCK_MONOTONIC, &now)
            let left = end - (Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000)
            guard left > 0 else {
                stop()
                return .timedOut
            }
            var poller = pollfd(fd: output, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, Int32(clamping: left))
            if ready < 0, errno == EINTR { continue }
            guard ready > 0 else {
                stop()
                return ready == 0 ? .timedOut : .notDelivered
            }
            let count = read(output, &byte, 1)
            if count < 0, errno == EINTR { continue }
            // End of file (or a broken pipe): the child died on this file.
            guard count == 1, answer.count < 16 else { break }
            if byte == 0x0A { break }
            answer.append(byte)
        }
        guard answer == Array("ok".utf8) else {
            stop()
            return .died
        }
        return .ok
    }

    /// Kills and reaps the child and closes its pipes.
    func stop() {
        kill(pid, SIGKILL)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0, errno == EINTR {}
        close(input)
        close(output)
    }

    /// Starts `executable vet`.
    static func spawn(_ executable: String) throws(SpawnFailure) -> VettingChild {
        // One spawn at a time, so that no child inherits the pipes of another being started
        // before they are close-on-exec (a crashed child's end of file would not come while another
        // child held its pipe open). Glibc's pipe2 is not visible to Swift.
        try spawning.withLock { _ throws(SpawnFailure) in try spawnAlone(executable) }
    }

    private static let spawning = Mutex(())

    private static func spawnAlone(_ executable: String) throws(SpawnFailure) -> VettingChild {
        var toChild: [Int32] = [0, 0]
        var fromChild: [Int32] = [0, 0]
        guard pipe(&toChild) == 0 else { throw SpawnFailure(reason: "pipe: " + Self.lastError) }
        guard pipe(&fromChild) == 0 else {
            let reason = "pipe: " + Self.lastError
            close(toChild[0])
            close(toChild[1])
            throw SpawnFailure(reason: reason)
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
        // A child that dies must not kill us with SIGPIPE on the next write.
        signal(SIGPIPE, SIG_IGN)
        let status = posix_spawn(&pid, executable, &actions, nil, &argv, &environment)
        close(toChild[0])
        close(fromChild[1])
        guard status == 0 else {
            close(toChild[1])
            close(fromChild[0])
            throw SpawnFailure(reason: String(cString: strerror(status)).lowercased())
        }
        return VettingChild(pid: pid, input: toChild[1], output: fromChild[0])
    }

    private static var lastError: String { String(cString: strerror(errno)).lowercased() }
}
