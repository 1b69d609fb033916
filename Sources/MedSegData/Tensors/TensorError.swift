/// Why an array cannot be served as asked. The kinds follow who must act: the client
/// (`invalidRequest`, `notFound`, `tooLarge`), whoever owns the data (`unprocessable`), or
/// nobody: the server cannot do it right now and the client should ask again (`unavailable`).
/// Messages name files by their base name only.
public struct TensorError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable {
        case invalidRequest
        case notFound
        case unprocessable
        case tooLarge
        case unavailable
    }

    public var kind: Kind
    public var message: String
    /// The file concerned (a full path: for logs and `medsegd check`, never sent to clients).
    public var file: String?

    public init(_ kind: Kind, _ message: String, file: String? = nil) {
        self.kind = kind
        self.message = message
        self.file = file
    }

    public var description: String { message }
}
