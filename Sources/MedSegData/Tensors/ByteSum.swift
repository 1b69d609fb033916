internal import HDF5

/// How the channels of a class add up in a byte mask. MedSegPy's `np.sum` widens to int64, so
/// a class with 256 set channels (or values 255 and 1) is set there; a byte sum that wrapped
/// would read 0, "nothing labelled", with no error. So bool masks take the logical or, and
/// uint8 and int8 sums are clamped to their type's bounds: the stored dtype is kept, and a set
/// class never reads as unset. (`add` saturates at each step: exact for uint8, whose partial sums
/// only grow; int8 sums go through `sum`.)
enum ByteSum: Sendable {
    case or, unsigned, signed

    init(_ dtype: DType) {
        switch dtype.kind {
        case .bool: self = .or
        case .int: self = .signed
        default: self = .unsigned
        }
    }

    @inline(__always)
    func add(_ a: UInt8, _ b: UInt8) -> UInt8 {
        switch self {
        case .or:
            return a | b
        case .unsigned:
            let (sum, overflow) = a.addingReportingOverflow(b)
            return overflow ? .max : sum
        case .signed:
            let (x, y) = (Int8(bitPattern: a), Int8(bitPattern: b))
            let (sum, overflow) = x.addingReportingOverflow(y)
            return UInt8(bitPattern: overflow ? (x < 0 ? .min : .max) : sum)
        }
    }

    /// The class's value once every channel is added (bool: 0 or 1).
    @inline(__always)
    func finish(_ value: UInt8) -> UInt8 {
        self == .or ? (value == 0 ? 0 : 1) : value
    }

    /// The class's value at one pixel (`source`: its channels): summed exactly in `Int` and
    /// clamped once, so the result does not depend on the channels' order (int8 100 + 100 - 100
    /// - 100 is 0, as NumPy's int64 sum says).
    @inline(__always)
    func sum(_ source: UnsafePointer<UInt8>, _ group: [Int]) -> UInt8 {
        switch self {
        case .or:
            var value: UInt8 = 0
            for channel in group { value |= source[channel] }
            return value == 0 ? 0 : 1
        case .unsigned:
            var value = 0
            for channel in group { value += Int(source[channel]) }
            return UInt8(clamping: value)
        case .signed:
            var value = 0
            for channel in group { value += Int(Int8(bitPattern: source[channel])) }
            return UInt8(bitPattern: Int8(clamping: value))
        }
    }
}
