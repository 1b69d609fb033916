public import MedSegData

/// Expected arrays computed from the values the fixtures wrote, by plain index arithmetic.
public enum Expected {
    /// Row-major element index.
    public static func offset(_ index: [Int], _ shape: [Int]) -> Int {
        zip(index, shape).reduce(0) { $0 * $1.1 + $1.0 }
    }

    /// MedSegPy's collect_mask on one pixel's uint8 channels, the sum kept in uint8 (saturated).
    public static func collate(_ channels: [UInt8], _ ids: [CategoryID]) -> [UInt8] {
        ids.map { id in UInt8(min(255, id.channels.reduce(0) { $0 + Int(channels[$1]) })) }
    }
}
