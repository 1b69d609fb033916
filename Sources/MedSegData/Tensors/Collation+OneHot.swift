/// The fast path for byte masks (uint8, int8, bool) of at most 8 channels: one-hot masks, as
/// MedSegPy writes them, hold only 0 and 1, so a pixel's channels read as one 8-byte word give a
/// bit pattern, and its output comes from a table with a row per pattern. Pixels holding other
/// values are handed to the exact per-pixel code. Profiled on 384x384x6 masks: class by class
/// collation was a quarter of a cold item's server CPU.
extension Collation {
    static let maxPatternChannels = 8

    /// Calls `pattern(pixel, bits)` for each pixel whose channels are all 0 or 1 (bit c set where
    /// channel c is 1), and `other(pixel)` for the rest.
    @inline(__always)
    static func forEachPattern(
        _ source: UnsafePointer<UInt8>, count: Int, channels: Int, pixels: Int, pattern: (Int, Int) -> Void, other: (Int) -> Void
    ) {
        let valueMask: UInt64 = channels >= 8 ? ~0 : (1 << UInt64(8 * channels)) - 1
        let ones = 0x0101_0101_0101_0101 & valueMask
        let high = 0xFEFE_FEFE_FEFE_FEFE & valueMask
        // Pixels whose 8-byte load stays inside the input; the last few are read byte by byte.
        let wordPixels = count >= 8 ? min(pixels, (count - 8) / channels + 1) : 0
        let raw = UnsafeRawPointer(source)
        for pixel in 0..<wordPixels {
            let word = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: pixel * channels, as: UInt64.self)) & valueMask
            guard word & high == 0 else {
                other(pixel)
                continue
            }
            // Gathers each byte's low bit into the top byte: bit c = channel c.
            pattern(pixel, Int(truncatingIfNeeded: ((word & ones) &* 0x0102_0408_1020_4080) >> 56))
        }
        for pixel in wordPixels..<pixels {
            var bits = 0
            var isPattern = true
            for channel in 0..<channels {
                let value = source[pixel * channels + channel]
                if value > 1 { isPattern = false }
                bits |= Int(value & 1) << channel
            }
            if isPattern { pattern(pixel, bits) } else { other(pixel) }
        }
    }

    /// The table of collated bytes per pattern: output channel k (and the background channel)
    /// packed little-endian into one word.
    static func collationTable(
        channels: Int, groups: [[Int]], outputChannels: Int, offset: Int, background: BackgroundChannel, isBool: Bool
    )
        -> [UInt64]
    {
        (0..<(1 << channels)).map { bits in
            var bytes = [UInt8](repeating: 0, count: 8)
            for (k, group) in groups.enumerated() {
                let sum = group.reduce(UInt8(0)) { $0 &+ UInt8((bits >> $1) & 1) }
                bytes[k + offset] = isBool ? min(sum, 1) : sum
            }
            if background != .none {
                let none = groups.indices.allSatisfy { bytes[$0 + offset] == 0 }
                bytes[background == .first ? 0 : outputChannels - 1] = none ? 1 : 0
            }
            return bytes.enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << UInt64(8 * $1.offset) }
        }
    }

    /// The table of labels per pattern, `overlapLabel` where two classes are set.
    static func labelTable(channels: Int, groups: [[Int]], background: BackgroundChannel) -> [UInt16] {
        (0..<(1 << channels)).map { bits in
            let set = groups.indices.filter { k in groups[k].contains { (bits >> $0) & 1 == 1 } }
            guard set.count <= 1 else { return overlapLabel }
            guard let k = set.first else { return background == .last ? UInt16(groups.count) : 0 }
            return UInt16(background == .last ? k : k + 1)
        }
    }

    static let overlapLabel = UInt16.max
}
