import Dispatch
import Glibc
public import Logging

/// systemd's `Type=notify` protocol without libsystemd: datagrams of `KEY=value` lines sent to the
/// socket named by `NOTIFY_SOCKET` (a path, or `@name` in the abstract namespace). Without the
/// variable (not started by systemd) every call does nothing.
public struct SystemdNotifier: Sendable {
    public let socketPath: String?
    private let logger: Logger

    public init(environment: [String: String], logger: Logger) {
        socketPath = environment["NOTIFY_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
        self.logger = logger
    }

    public func ready(status: String) { send("READY=1\nSTATUS=\(status)") }

    /// Before a reload: systemd ≥ 253 wants the monotonic time with it.
    public func reloading() {
        // DispatchTime counts CLOCK_MONOTONIC, the clock systemd means.
        send("RELOADING=1\nMONOTONIC_USEC=\(DispatchTime.now().uptimeNanoseconds / 1000)")
    }

    public func stopping() { send("STOPPING=1") }

    public func status(_ text: String) { send("STATUS=\(text)") }

    func send(_ message: String) {
        guard let socketPath else { return }
        let descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else {
            logger.warning("cannot notify systemd: socket() failed")
            return
        }
        defer { close(descriptor) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var path = Array(socketPath.utf8)
        if path.first == UInt8(ascii: "@") { path[0] = 0 }  // abstract namespace
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard path.count < capacity else {
            logger.warning("cannot notify systemd: NOTIFY_SOCKET is too long")
            return
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in path.enumerated() { raw[index] = byte }
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + path.count + (path.first == 0 ? 0 : 1))
        let sent = message.utf8CString.withUnsafeBufferPointer { text in
            withUnsafePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(descriptor, text.baseAddress, text.count - 1, Int32(MSG_NOSIGNAL), $0, length)
                }
            }
        }
        if sent < 0 { logger.warning("cannot notify systemd", metadata: ["error": "\(String(cString: strerror(errno)))"]) }
    }
}
