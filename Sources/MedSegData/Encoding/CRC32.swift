internal import CZlib

/// The CRC-32 of ZIP archives, through zlib (vectorized where the CPU allows).
public struct CRC32: Sendable {
    public private(set) var value: UInt32 = 0

    public init() {}

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        var remaining = bytes.count
        var pointer = base.assumingMemoryBound(to: UInt8.self)
        var crc = UInt(value)
        // zlib takes a 32-bit length.
        while remaining > 0 {
            let step = min(remaining, 1 << 30)
            crc = crc32(crc, pointer, UInt32(step))
            pointer += step
            remaining -= step
        }
        value = UInt32(truncatingIfNeeded: crc)
    }

    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }
}
