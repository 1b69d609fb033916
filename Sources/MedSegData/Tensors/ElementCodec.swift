import HDF5

/// Reads and writes single elements of any served dtype as Swift numbers, honouring byte order.
/// Collation and conversion go through it; it is not the fast path for whole images.
struct ElementCodec {
    let dtype: DType

    init(_ dtype: DType) { self.dtype = dtype }

    private func loadBits(_ bytes: UnsafeRawBufferPointer, _ index: Int) -> UInt64 {
        let offset = index * dtype.size
        switch dtype.size {
        case 1: return UInt64(bytes[offset])
        case 2:
            let value = bytes.loadUnaligned(fromByteOffset: offset, as: UInt16.self)
            return UInt64(dtype.byteOrder == .big ? UInt16(bigEndian: value) : UInt16(littleEndian: value))
        case 4:
            let value = bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self)
            return UInt64(dtype.byteOrder == .big ? UInt32(bigEndian: value) : UInt32(littleEndian: value))
        default:
            let value = bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
            return dtype.byteOrder == .big ? UInt64(bigEndian: value) : UInt64(littleEndian: value)
        }
    }

    private func storeBits(_ bits: UInt64, _ bytes: UnsafeMutableRawBufferPointer, _ index: Int) {
        let offset = index * dtype.size
        switch dtype.size {
        case 1: bytes[offset] = UInt8(truncatingIfNeeded: bits)
        case 2:
            let value = UInt16(truncatingIfNeeded: bits)
            bytes.storeBytes(of: dtype.byteOrder == .big ? value.bigEndian : value.littleEndian, toByteOffset: offset, as: UInt16.self)
        case 4:
            let value = UInt32(truncatingIfNeeded: bits)
            bytes.storeBytes(of: dtype.byteOrder == .big ? value.bigEndian : value.littleEndian, toByteOffset: offset, as: UInt32.self)
        default:
            bytes.storeBytes(of: dtype.byteOrder == .big ? bits.bigEndian : bits.littleEndian, toByteOffset: offset, as: UInt64.self)
        }
    }

    /// The element as a number: integers exactly (within Int64/UInt64 range), floats as Double.
    func load(_ bytes: UnsafeRawBufferPointer, _ index: Int) -> Number {
        let bits = loadBits(bytes, index)
        switch dtype.kind {
        case .bool: return .integer(bits == 0 ? 0 : 1)
        case .uint: return dtype.size == 8 ? .unsigned(bits) : .integer(Int64(bits))
        case .int:
            let shift = UInt64(64 - dtype.size * 8)
            return .integer(Int64(bitPattern: bits << shift) >> Int64(shift))
        case .float:
            switch dtype.size {
            case 2: return .real(Double(Float16(bitPattern: UInt16(bits))))
            case 4: return .real(Double(Float(bitPattern: UInt32(bits))))
            default: return .real(Double(bitPattern: bits))
            }
        }
    }

    /// Stores a number with NumPy's `astype` rules: integers wrap, floats truncate toward zero
    /// (NaN becomes 0 and out-of-range values saturate, where NumPy's result is undefined),
    /// anything non-zero (NaN included) is `True`.
    func store(_ number: Number, _ bytes: UnsafeMutableRawBufferPointer, _ index: Int) {
        switch dtype.kind {
        case .bool:
            storeBits(number.isZero ? 0 : 1, bytes, index)
        case .int, .uint:
            storeBits(number.integerBits(for: dtype), bytes, index)
        case .float:
            let value = number.doubleValue
            switch dtype.size {
            case 2: storeBits(UInt64(Float16(value).bitPattern), bytes, index)
            case 4: storeBits(UInt64(Float(value).bitPattern), bytes, index)
            default: storeBits(value.bitPattern, bytes, index)
            }
        }
    }

    /// Whether the element is zero (for background labels): NaN counts as set, as in NumPy's `bool`.
    func isZero(_ bytes: UnsafeRawBufferPointer, _ index: Int) -> Bool {
        load(bytes, index).isZero
    }
}

/// An element value on its way between dtypes.
enum Number {
    case integer(Int64)
    case unsigned(UInt64)
    case real(Double)

    var isZero: Bool {
        switch self {
        case .integer(let value): value == 0
        case .unsigned(let value): value == 0
        case .real(let value): value == 0
        }
    }

    var doubleValue: Double {
        switch self {
        case .integer(let value): Double(value)
        case .unsigned(let value): Double(value)
        case .real(let value): value
        }
    }

    /// Two's-complement bits of the value in an integer dtype of `dtype.size` bytes. Integers wrap
    /// as NumPy's `astype` does; floats, where NumPy's result is undefined, follow medsegd's rule
    /// (docs/API.md): truncate toward zero, NaN becomes 0, and infinities and values beyond the
    /// type saturate at its minimum or maximum.
    func integerBits(for dtype: DType) -> UInt64 {
        switch self {
        case .integer(let value): return UInt64(bitPattern: value)
        case .unsigned(let value): return value
        case .real(let value):
            guard !value.isNaN else { return 0 }
            let bits = UInt64(dtype.size * 8)
            let truncated = value.rounded(.towardZero)
            if dtype.kind == .uint {
                // 2^bits is exact as a Double; comparing against it avoids converting an
                // out-of-range value (which traps).
                let maximum = bits == 64 ? UInt64.max : (UInt64(1) << bits) - 1
                if truncated <= 0 { return 0 }
                if truncated >= Double(sign: .plus, exponent: Int(bits), significand: 1) { return maximum }
                return UInt64(truncated)
            }
            let maximum = Int64(bitPattern: (UInt64(1) << (bits - 1)) &- 1)
            let minimum = -maximum - 1
            if truncated >= Double(sign: .plus, exponent: Int(bits) - 1, significand: 1) { return UInt64(bitPattern: maximum) }
            if truncated < Double(sign: .minus, exponent: Int(bits) - 1, significand: 1) { return UInt64(bitPattern: minimum) }
            return UInt64(bitPattern: Int64(truncated))
        }
    }

    /// The value clamped to an integer dtype's range (floats as they are): a collated class's
    /// sum kept in the stored dtype saturates, where a wrapped one could read 0 (unset).
    func saturated(for dtype: DType) -> Number {
        guard dtype.kind == .int || dtype.kind == .uint, dtype.size < 8 else { return self }
        let bits = UInt64(dtype.size * 8)
        switch (self, dtype.kind) {
        case (.unsigned(let value), .uint): return .unsigned(Swift.min(value, (1 << bits) - 1))
        case (.unsigned(let value), _): return .unsigned(Swift.min(value, (1 << (bits - 1)) - 1))
        case (.integer(let value), _):
            let maximum = dtype.kind == .uint ? Int64((1 << bits) - 1) : Int64((1 << (bits - 1)) - 1)
            let minimum = dtype.kind == .uint ? 0 : -Int64(1 << (bits - 1))
            return .integer(Swift.max(minimum, Swift.min(value, maximum)))
        case (.real, _): return self
        }
    }

    /// Sum in 64 bits (collation stores it `saturated` in the stored dtype).
    static func + (lhs: Number, rhs: Number) -> Number {
        switch (lhs, rhs) {
        case (.real(let a), _): return .real(a + rhs.doubleValue)
        case (_, .real(let b)): return .real(lhs.doubleValue + b)
        case (.unsigned(let a), .unsigned(let b)):
            let (sum, overflow) = a.addingReportingOverflow(b)
            return .unsigned(overflow ? .max : sum)
        case (.unsigned(let a), .integer(let b)): return .unsigned(a &+ UInt64(bitPattern: b))
        case (.integer(let a), .unsigned(let b)): return .unsigned(UInt64(bitPattern: a) &+ b)
        case (.integer(let a), .integer(let b)):
            let (sum, overflow) = a.addingReportingOverflow(b)
            return .integer(overflow ? (a < 0 ? .min : .max) : sum)
        }
    }
}
