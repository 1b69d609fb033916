/// A failed HDF5 operation, with the file and object it concerned.
///
/// `detail` is the innermost message of HDF5's own error stack ("file signature not found");
/// the full C stack is never kept, so it can never reach a client.
public struct HDF5Error: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        case openFailed = "cannot open"
        case notFound = "not found"
        case unsupported = "unsupported"
        case readFailed = "cannot read"
        case writeFailed = "cannot write"
        case invalidSelection = "invalid selection"
        /// The file could not be checked before opening (see MedSegData's HDF5Vetting): nothing
        /// is known against it, and asking again may succeed.
        case checkUnavailable = "cannot check"
    }

    public var kind: Kind
    /// The file's path as the caller gave it.
    public var file: String
    /// The object inside the file (`data`, `/scan1/volume`), when there is one.
    public var object: String?
    public var detail: String

    public init(_ kind: Kind, file: String, object: String? = nil, detail: String) {
        self.kind = kind
        self.file = file
        self.object = object
        self.detail = detail
    }

    public var description: String {
        let target = object.map { "'\($0)' in \(file)" } ?? file
        return detail.isEmpty ? "\(kind.rawValue) \(target)" : "\(kind.rawValue) \(target): \(detail)"
    }
}
