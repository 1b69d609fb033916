internal import CHDF5

/// The few rules every call into the C library follows, in one place.
enum HDF5Library {
    /// Called before any HDF5 call on the current thread.
    @inline(__always)
    static func prepareThread() {
        medseg_silence_errors()
    }

    /// The innermost HDF5 error message for a call that just failed; clears the error stack.
    @discardableResult
    static func takeErrorMessage() -> String {
        var buffer = [CChar](repeating: 0, count: 512)
        medseg_take_error_message(&buffer, buffer.count)
        return clientSafe(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }

    /// HDF5's innermost messages can quote the file's path, descriptor numbers and addresses
    /// ("file read failed: time = ..., filename = '/data/x.h5', file descriptor = 19, errno = 21,
    /// error message = 'Is a directory', buf = 0x7f..."): keep the words, drop the rest, so that
    /// no path or address ever reaches a client.
    static func clientSafe(_ message: String) -> String {
        guard message.contains("/") || message.contains("0x") || message.contains("filename") else { return message }
        let head = String(message.split(separator: ":", maxSplits: 1).first ?? "")
        if let start = message.firstRange(of: "error message = '"), let end = message[start.upperBound...].firstIndex(of: "'") {
            return head + ": " + message[start.upperBound..<end].lowercased()
        }
        return head.contains("/") ? "unreadable" : head
    }

    static func error(_ kind: HDF5Error.Kind, file: String, object: String? = nil, _ fallback: String = "") -> HDF5Error {
        let message = takeErrorMessage()
        return HDF5Error(kind, file: file, object: object, detail: message.isEmpty ? fallback : message)
    }

    static var defaultProperties: hid_t { medseg_h5p_default() }
}
