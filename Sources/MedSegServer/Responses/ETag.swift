import Crypto
import MedSegData

/// Strong ETags for tensor responses: the first 128 bits of SHA-256 over the response's content
/// key as replicas share it (request, files under their roots, sizes and modification times). A
/// cryptographic hash, so no client can search for two requests that share a tag; derived from
/// what copies of the files share, so replicas agree.
enum ETag {
    static func of(_ key: ContentKey) -> String {
        let digest = SHA256.hash(data: Array(key.sharedText.utf8))
        return "\""
            + digest.prefix(16).map { byte in
                let hex = String(byte, radix: 16)
                return byte < 16 ? "0" + hex : hex
            }.joined() + "\""
    }
}
