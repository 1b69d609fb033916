import MedSegData
import Synchronization

/// The bearer tokens `/v1` (and `/metrics`) accept, read from `server.tokens_file` (one a line;
/// blank lines and `#` comments ignored) and replaced whole on reload.
public final class TokenStore: Sendable {
    public struct LoadError: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    private let tokens = Mutex<[[UInt8]]?>(nil)

    public init() {}

    /// Tokens required from now on (nil: none required).
    public func replace(with tokens: [[UInt8]]?) {
        self.tokens.withLock { $0 = tokens }
    }

    public var isEnabled: Bool { tokens.withLock { $0 != nil } }

    /// Reads a tokens file.
    public static func read(_ path: String) throws(LoadError) -> [[UInt8]] {
        let bytes: [UInt8]
        do {
            bytes = try FileSystem.readFile(path)
        } catch {
            throw LoadError(description: "cannot read tokens_file \(path): \(error.reason)")
        }
        let tokens = bytes.split(separator: 0x0A).map { line in
            Array(line.drop { $0 == 0x20 || $0 == 0x09 }.reversed().drop { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }.reversed())
        }.filter { !$0.isEmpty && $0.first != UInt8(ascii: "#") }
        guard !tokens.isEmpty else { throw LoadError(description: "tokens_file \(path) holds no token") }
        return tokens
    }

    /// Whether `candidate` is one of the tokens, compared in constant time: the time taken does
    /// not depend on how much of a token matched, nor on which token it was.
    public func accepts(_ candidate: some Collection<UInt8>) -> Bool {
        let candidate = Array(candidate)
        return tokens.withLock { tokens in
            guard let tokens else { return true }
            var accepted: UInt8 = 0
            for token in tokens {
                accepted |= Self.constantTimeEqual(token, candidate)
            }
            return accepted == 1
        }
    }

    /// 1 when `a` and `b` are the same bytes, else 0. The loop runs over the longer of the two
    /// whatever their contents; a length difference is kept whole (not folded into a byte), so
    /// a token followed by any number of NULs never compares equal.
    private static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> UInt8 {
        var difference: UInt8 = a.count == b.count ? 0 : 1
        let length = max(a.count, b.count)
        for index in 0..<length {
            let x = index < a.count ? a[index] : 0
            let y = index < b.count ? b[index] : 0
            difference |= x ^ y
        }
        return difference == 0 ? 1 : 0
    }
}
