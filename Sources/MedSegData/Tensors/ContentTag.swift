/// Strong ETags for tensor responses, derived from what the bytes depend on: the request's
/// canonical form and the identity (device, inode, size, modification time) of every file read.
/// The same request on any replica gives the same tag until a file changes; no data is read.
public enum ContentTag {
    /// Bumped whenever the bytes medsegd sends for the same request and files would change.
    static let encodingVersion = "1"

    public static func make(request: String, files: [String]) -> String {
        var hash = FNV1a()
        hash.add(encodingVersion)
        hash.add(request)
        for file in files {
            hash.add(file)
            hash.add(FileIdentity.of(file)?.description ?? "missing")
        }
        return "\"" + String(hash.value, radix: 16) + "\""
    }
}

/// 64-bit FNV-1a: stable across processes and machines, unlike Swift's seeded `Hasher`.
struct FNV1a {
    private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    mutating func add(_ text: String) {
        for byte in text.utf8 { value = (value ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        value = (value ^ 0xFF) &* 0x0000_0100_0000_01B3  // field separator
    }
}
