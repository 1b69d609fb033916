import Crypto
import MedSegData

/// Strong ETags for tensor responses: the first 128 bits of SHA-256 over the response's full
/// content key (request, files, versions). A cryptographic hash, so no client can search for
/// two requests that share a tag; derived from content alone, so replicas agree.
enum ETag {
    static func of(_ key: ContentKey) -> String {
        let digest = SHA256.hash(data: Array(key.text.utf8))
        return "\""
            + digest.prefix(16).map { byte in
                let hex = String(byte, radix: 16)
                return byte < 16 ? "0" + hex : hex
            }.joined() + "\""
    }
}
