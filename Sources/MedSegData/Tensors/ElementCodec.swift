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
    /// anything non-zero is `True`.
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

    /// Two's-complement bits of the value in an integer dtype of `dtype.size` bytes.
    func integerBits(for dtype: DType) -> UInt64 {
        switch self {
        case .integer(let value): return UInt64(bitPattern: value)
        case .unsigned(let value): return value
        case .real(let value):
            guard !value.isNaN else { return 0 }
            let bits = dtype.size * 8
            if dtype.kind == .uint {
                let maximum = bits == 64 ? Double(UInt64.max) : Double((UInt64(1) << UInt64(bits)) - 1)
                return UInt64(min(max(value.rounded(.towardZero), 0), maximum))
            }
            let limit = Double(Int64(1) << Int64(bits - 1))
            let clamped = min(max(value.rounded(.towardZero), -limit), limit - 1)
            return UInt64(bitPattern: bits == 64 ? Int64(max(min(value.rounded(.towardZero), 9.2e18), -9.2e18)) : Int64(clamped))
        }
    }

    /// Sum in the stored dtype: integers wrap as NumPy's fixed-width sums do.
    static func + (lhs: Number, rhs: Number) -> Number {
        switch (lhs, rhs) {
        case (.real(let a), _): return .real(a + rhs.doubleValue)
        case (_, .real(let b)): return .real(lhs.doubleValue + b)
        case (.unsigned(let a), .unsigned(let b)): return .unsigned(a &+ b)
        case (.unsigned(let a), .integer(let b)): return .unsigned(a &+ UInt64(bitPattern: b))
        case (.integer(let a), .unsigned(let b)): return .unsigned(UInt64(bitPattern: a) &+ b)
        case (.integer(let a), .integer(let b)): return .integer(a &+ b)
        }
    }
}
