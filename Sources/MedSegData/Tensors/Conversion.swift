public import HDF5

/// `?dtype=`: NumPy's `astype` into a little-endian type.
public enum Conversion {
    public static func convert(_ tensor: Tensor, to target: DType) -> Tensor {
        let target = target.withByteOrder(.little)
        if tensor.dtype == target { return tensor }
        var output = Tensor(zeros: target, shape: tensor.shape)
        tensor.bytes.withUnsafeBytes { input in
            output.bytes.withUnsafeMutableBytes { out in convert(input, from: tensor.dtype, into: out, as: target) }
        }
        return output
    }

    /// Converts every element of `input` (of `source`) into `out` (of `target`, little-endian).
    public static func convert(_ input: UnsafeRawBufferPointer, from source: DType, into out: UnsafeMutableRawBufferPointer, as target: DType) {
        let target = target.withByteOrder(.little)
        let count = input.count / source.size
        if source == target {
            out.copyMemory(from: input)
        } else if source.withByteOrder(.little) == target {
            // Same type, other byte order: swap each element's bytes.
            let size = target.size
            for element in 0..<count {
                for byte in 0..<size { out[element * size + byte] = input[element * size + size - 1 - byte] }
            }
        } else if convertCommon(input, from: source, into: out, as: target, count: count) {
            return
        } else {
            let reader = ElementCodec(source)
            let writer = ElementCodec(target)
            for element in 0..<count { writer.store(reader.load(input, element), out, element) }
        }
    }

    /// The conversions training asks for most (float32 to float16 above all), element by element
    /// in native types rather than through the generic codec, which was most of a float16 item's
    /// server CPU. Same results: each is one IEEE rounding, or exact.
    private static func convertCommon(
        _ input: UnsafeRawBufferPointer, from source: DType, into out: UnsafeMutableRawBufferPointer, as target: DType, count: Int
    ) -> Bool {
        guard DType.ByteOrder.native == .little, source.byteOrder == .little || source.size == 1 else { return false }
        switch (source.kind, source.size, target.kind, target.size) {
        case (.float, 4, .float, 2): map(input, out, count) { (value: Float) in halfBits(value) }
        case (.float, 8, .float, 4): map(input, out, count) { (value: Double) in Float(value) }
        case (.float, 8, .float, 2): map(input, out, count) { (value: Double) in Float16(value) }
        case (.int, 2, .float, 4): map(input, out, count) { (value: Int16) in Float(value) }
        case (.uint, 2, .float, 4): map(input, out, count) { (value: UInt16) in Float(value) }
        case (.uint, 1, .float, 4): map(input, out, count) { (value: UInt8) in Float(value) }
        case (.int, 2, .float, 2): map(input, out, count) { (value: Int16) in Float16(Float(value)) }
        case (.uint, 1, .float, 2): map(input, out, count) { (value: UInt8) in Float16(value) }
        // float64: the fingerprint's statistics.
        case (.float, 4, .float, 8): map(input, out, count) { (value: Float) in Double(value) }
        case (.int, 2, .float, 8): map(input, out, count) { (value: Int16) in Double(value) }
        case (.uint, 2, .float, 8): map(input, out, count) { (value: UInt16) in Double(value) }
        case (.uint, 1, .float, 8): map(input, out, count) { (value: UInt8) in Double(value) }
        case (.int, 4, .float, 8): map(input, out, count) { (value: Int32) in Double(value) }
        default: return false
        }
        return true
    }

    @inline(__always)
    private static func map<Source, Target>(
        _ input: UnsafeRawBufferPointer, _ out: UnsafeMutableRawBufferPointer, _ count: Int, _ transform: (Source) -> Target
    ) {
        let sourceSize = MemoryLayout<Source>.size
        let targetSize = MemoryLayout<Target>.size
        for element in 0..<count {
            let value = input.loadUnaligned(fromByteOffset: element * sourceSize, as: Source.self)
            out.storeBytes(of: transform(value), toByteOffset: element * targetSize, as: Target.self)
        }
    }

    /// IEEE round-to-nearest-even float32 to float16 bits, branch-light (F. Giesen's method):
    /// the library's conversion is a call per element without F16C. NaNs go the library's way:
    /// they stay NaN (a signalling NaN's payload may differ from NumPy's).
    @inline(__always)
    static func halfBits(_ value: Float) -> UInt16 {
        var bits = value.bitPattern
        let sign = bits & 0x8000_0000
        bits ^= sign
        let half: UInt32
        if bits >= 0x4780_0000 {  // 2^16: past float16's range, or inf or NaN
            guard bits <= 0x7F80_0000 else { return Float16(value).bitPattern }
            half = 0x7C00
        } else if bits < 0x3880_0000 {  // 2^-14: subnormal or zero in float16
            // Adding 0.5 aligns the 10 mantissa bits at the bottom; the FPU rounds to nearest even.
            half = (Float(bitPattern: bits) + 0.5).bitPattern &- 0x3F00_0000
        } else {
            let odd = (bits >> 13) & 1
            half = (bits &+ 0xC800_0FFF &+ odd) >> 13  // rebias the exponent by -112, round
        }
        return UInt16(truncatingIfNeeded: half | sign >> 16)
    }
}
