import HDF5
import Testing

@testable import MedSegData

/// Seeded random inputs (including 0, negatives, Int.max and empty shapes) checked against small
/// reference implementations written the obvious way: Python's slice rules, MedSegPy's
/// collect_mask, and the documented dtype conversion rule.
@Suite("Properties: regions, collation and conversion against reference implementations")
struct PropertyTests {
    /// SplitMix64: the same cases on every run and machine.
    struct Random {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func int(_ range: ClosedRange<Int>) -> Int {
            range.lowerBound + Int(next() % UInt64(range.upperBound - range.lowerBound + 1))
        }
        mutating func pick<T>(_ values: [T]) -> T { values[int(0...values.count - 1)] }
    }

    static let edgeNumbers = [0, 1, -1, 2, -2, 3, 5, -5, 7, 100, -100, Int.max, Int.max - 1, -Int.max, Int.min + 1]

    /// Python's `range(len)[slice]` and `range(len)[index]`, written out.
    static func pythonIndices(_ component: Region.Component, length: Int) -> [Int]? {
        switch component {
        case .index(let index):
            let position = index < 0 ? index + length : index
            return position >= 0 && position < length ? [position] : nil
        case .slice(let start, let stop, let step):
            let step = step ?? 1
            guard step > 0 else { return nil }
            func clamp(_ value: Int?, _ fallback: Int) -> Int {
                guard let value else { return fallback }
                return value < 0 ? max(value + length, 0) : min(value, length)
            }
            var result: [Int] = []
            var position = clamp(start, 0)
            let end = clamp(stop, length)
            while position < end {
                result.append(position)
                let (next, overflow) = position.addingReportingOverflow(step)
                if overflow { break }
                position = next
            }
            return result
        }
    }

    @Test("regions select exactly Python's indices, never trap, and read the same elements")
    func regions() throws {
        var random = Random(state: 1)
        for _ in 0..<4000 {
            let rank = random.int(0...3)
            let shape = (0..<rank).map { _ in random.int(0...6) }
            let components: [Region.Component] = (0..<random.int(0...rank)).map { _ in
                func number() -> Int? { random.int(0...3) == 0 ? nil : random.pick(Self.edgeNumbers) }
                return random.int(0...3) == 0 ? .index(random.pick(Self.edgeNumbers)) : .slice(start: number(), stop: number(), step: number())
            }
            let region = Region(components)
            let expected = components.indices.map { Self.pythonIndices(components[$0], length: shape[$0]) }
            guard let resolved = try? region.resolve(for: shape) else {
                // Refused only where Python refuses: an index out of range, or a step <= 0.
                #expect(expected.contains { $0 == nil }, "refused \(region) for \(shape)")
                continue
            }
            #expect(!expected.contains { $0 == nil }, "accepted \(region) for \(shape)")
            #expect(resolved.hyperslab.fits(in: shape))
            for axis in 0..<rank {
                let slab = resolved.hyperslab
                let selected = (0..<slab.count[axis]).map { slab.start[axis] + $0 * slab.stride[axis] }
                let reference = axis < components.count ? expected[axis]! : Array(0..<shape[axis])
                #expect(selected == reference, "axis \(axis) of \(region) over \(shape)")
            }
            // The gather used by direct reads picks the same elements as an element-by-element walk.
            let count = shape.reduce(1, *)
            let values = (0..<count).map { UInt16($0) }
            var gathered = [UInt16](repeating: 0xFFFF, count: resolved.hyperslab.elementCount)
            values.withUnsafeBytes { source in
                gathered.withUnsafeMutableBytes { output in
                    guard count > 0, !output.isEmpty else { return }
                    Gather.copy(
                        source.baseAddress!, blockOrigin: [Int](repeating: 0, count: rank), blockShape: shape,
                        selection: resolved.hyperslab, output: output.baseAddress!, elementSize: 2)
                }
            }
            #expect(gathered == Self.walk(resolved.hyperslab, shape: shape).map { UInt16($0) })
        }
    }

    static func walk(_ slab: Hyperslab, shape: [Int]) -> [Int] {
        var result: [Int] = []
        func visit(_ axis: Int, _ offset: Int) {
            if axis == shape.count {
                result.append(offset)
                return
            }
            let stride = shape[(axis + 1)...].reduce(1, *)
            for k in 0..<slab.count[axis] { visit(axis + 1, offset + (slab.start[axis] + k * slab.stride[axis]) * stride) }
        }
        if slab.elementCount > 0 || shape.isEmpty { visit(0, 0) }
        return result
    }

    @Test("collation equals MedSegPy's collect_mask and add_background_labels, and labels its argmax, for every dtype")
    func collation() {
        var random = Random(state: 2)
        for dtype in [DType.bool, .uint8, .int8, .int16.withByteOrder(.big), .uint16, .int32, .float32, .float64.withByteOrder(.big)] {
            for _ in 0..<300 {
                // Up to 9 channels and 40 pixels: the one-hot table path (<= 8 channels), its
                // byte-by-byte tail, and the class-by-class path.
                let channels = random.int(1...9)
                let pixels = random.int(0...40)
                let stored: [Double] = (0..<(channels * pixels)).map { _ in
                    dtype.kind == .bool
                        ? Double(random.int(0...1)) : dtype.kind == .float ? Double(random.int(-3...3)) / 2 : Double(random.int(0...3))
                }
                let selection = CategorySelection(
                    (0..<random.int(1...4)).map { _ in
                        var group = Array(Set((0..<random.int(1...3)).map { _ in random.int(0...channels - 1) }))
                        group.sort()
                        return group.count == 1 ? .single(group[0]) : .collated(group)
                    })
                let background = random.pick([BackgroundChannel.none, .first, .last])
                let input = Self.encode(stored, dtype)
                let output = Collation.collate(
                    Tensor(dtype: dtype, shape: [pixels, channels], bytes: input), selection: selection, background: background)
                var expected: [Double] = []
                var expectedLabels: [UInt8]? = []
                for pixel in 0..<pixels {
                    var classes: [Double] = selection.ids.map { id in
                        let sum = id.channels.reduce(0.0) { $0 + stored[pixel * channels + $1] }
                        return dtype.kind == .bool ? (sum != 0 ? 1 : 0) : sum
                    }
                    let set = classes.indices.filter { classes[$0] != 0 }
                    if set.count > 1 { expectedLabels = nil }
                    let label = set.first.map { background == .last ? $0 : $0 + 1 } ?? (background == .last ? classes.count : 0)
                    expectedLabels?.append(UInt8(label))
                    let none: Double = classes.allSatisfy { $0 == 0 } ? 1 : 0
                    if background == .first { classes.insert(none, at: 0) }
                    if background == .last { classes.append(none) }
                    expected += classes
                }
                #expect(output.bytes == Self.encode(expected, dtype), "\(dtype) \(selection) \(background)")
                var labels = [UInt8](repeating: 0xAA, count: pixels)
                let overlap = input.withUnsafeBytes { source in
                    labels.withUnsafeMutableBytes { out in
                        Collation.labels(
                            source, dtype: dtype, channels: channels, selection: selection, background: background, into: out, labelType: .uint8)
                    }
                }
                if let expectedLabels {
                    #expect(overlap == nil && labels == expectedLabels, "labels: \(dtype) \(selection) \(background)")
                } else {
                    #expect(overlap != nil, "labels must report the overlap: \(dtype) \(selection) \(background)")
                }
            }
        }
    }

    /// Small exact values in `dtype` (test helper, not the code under test).
    static func encode(_ values: [Double], _ dtype: DType) -> [UInt8] {
        var bytes: [UInt8] = []
        for value in values {
            var element: [UInt8]
            switch (dtype.kind, dtype.size) {
            case (.float, 4): element = withUnsafeBytes(of: Float(value).bitPattern.littleEndian, Array.init)
            case (.float, 8): element = withUnsafeBytes(of: value.bitPattern.littleEndian, Array.init)
            case (_, 1): element = [UInt8(truncatingIfNeeded: Int(value))]
            case (_, 2): element = withUnsafeBytes(of: UInt16(truncatingIfNeeded: Int(value)).littleEndian, Array.init)
            case (_, 4): element = withUnsafeBytes(of: UInt32(truncatingIfNeeded: Int(value)).littleEndian, Array.init)
            default: element = withUnsafeBytes(of: UInt64(truncatingIfNeeded: Int(value)).littleEndian, Array.init)
            }
            if dtype.byteOrder == .big { element.reverse() }
            bytes += element
        }
        return bytes
    }

    /// The documented rule for a float in an integer dtype, written with exact integer bounds.
    static func referenceInteger(_ value: Double, kind: DType.Kind, bits: Int) -> (negative: Bool, magnitude: UInt64) {
        if value.isNaN { return (false, 0) }
        let minimum: (Bool, UInt64) = kind == .uint ? (false, 0) : (true, UInt64(1) << UInt64(bits - 1))
        let maximum: UInt64 = kind == .uint ? (bits == 64 ? .max : (UInt64(1) << UInt64(bits)) - 1) : (UInt64(1) << UInt64(bits - 1)) - 1
        let truncated = value.rounded(.towardZero)
        if truncated < 0 {
            if kind == .uint { return (false, 0) }
            let magnitude = -truncated >= Double(minimum.1) ? minimum.1 : UInt64(-truncated)
            return (magnitude != 0, magnitude)
        }
        return (false, truncated >= Double(maximum) ? maximum : UInt64(truncated))
    }

    @Test("float32 to float16 without the library call rounds exactly as Float16(_:) does, over every exponent")
    func halfConversion() {
        // Every 65,537th bit pattern (all exponents and signs, many mantissas) and the edges.
        var patterns = Array(stride(from: UInt32(0), to: UInt32.max - 65537, by: 65537))
        patterns += [
            0x4780_0000, 0x477F_E000, 0x477F_EFFF, 0x477F_F000, 0x3880_0000, 0x387F_FFFF, 0x3300_0000, 0x3300_0001, 0x7F80_0000, 0x7FC0_0001,
        ]
        for bits in patterns + patterns.map({ $0 | 0x8000_0000 }) {
            let value = Float(bitPattern: bits)
            #expect(Conversion.halfBits(value) == Float16(value).bitPattern, "\(value) (0x\(String(bits, radix: 16)))")
        }
    }

    @Test("floats convert to every integer dtype by the documented rule: NaN 0, out of range saturates")
    func conversion() {
        var random = Random(state: 3)
        let specials: [Double] = [
            .nan, .infinity, -.infinity, 0, -0.0, 0.5, -0.5, 1e30, -1e30, 255.9, 256, -129, 127.9, 65535.5, 65536,
            4294967295.5, 4_294_967_296, Double(Int64.max), 9_223_372_036_854_775_808, -9_223_372_036_854_775_808,
            -9_223_372_036_854_777_856, Double(UInt64.max), 18_446_744_073_709_551_616, .greatestFiniteMagnitude,
        ]
        var values = specials
        for _ in 0..<2000 { values.append(Double(bitPattern: random.next())) }
        for dtype in [DType.uint8, .int8, .uint16, .int16, .uint32, .int32, .uint64, .int64] {
            let input = Tensor(
                dtype: .float64, shape: [values.count], bytes: values.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) })
            let output = Conversion.convert(input, to: dtype)
            for (index, value) in values.enumerated() {
                var bits: UInt64 = 0
                for byte in 0..<dtype.size { bits |= UInt64(output.bytes[index * dtype.size + byte]) << UInt64(8 * byte) }
                let (negative, magnitude) = Self.referenceInteger(value, kind: dtype.kind, bits: dtype.size * 8)
                let mask: UInt64 = dtype.size == 8 ? .max : (UInt64(1) << UInt64(dtype.size * 8)) - 1
                let expected = (negative ? (0 &- magnitude) : magnitude) & mask
                #expect(bits == expected, "\(value) as \(dtype)")
            }
        }
    }

    @Test("layout sizes saturate instead of trapping; dict paging takes any offset and limit")
    func sizes() {
        #expect(TensorLayout(dtype: .float32, shape: [Int.max, 2]).byteCount == Int.max)
        #expect(TensorLayout(dtype: .float32, shape: [1 << 40, 1 << 30]).elementCount == Int.max)
        #expect(Hyperslab(start: [1], count: [3], stride: [Int.max]).fits(in: [10]) == false)
        // Found by fuzzing: an empty selection with a long other axis is one chunk, not 390,842.
        #expect(RowChunking(counts: [0, 1, 390_842_023_940], splittable: 3, bytesPerElement: 4).chunkCount == 1)
        #expect(RowChunking(counts: [0, 5, 390_842_023_940], splittable: 3, bytesPerElement: 4).byteCount(0, of: 0) == 0)
        #expect([Int.max, 2].checkedProduct == nil && [Int](repeating: 7, count: 0).checkedProduct == 1 && [3, -1].checkedProduct == nil)
    }
}
