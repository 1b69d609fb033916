import HDF5
import MedSegData
import TestSupport
import Testing

@Suite("Collation and conversion, against sums computed by hand")
struct CollationTests {
    /// A 1 x 2 x 1 x 4 mask: pixel 0 has channels 1 and 2 set, pixel 1 only channel 3.
    let mask = Tensor(dtype: .uint8, shape: [1, 2, 1, 4], bytes: [0, 1, 1, 0, 0, 0, 0, 1])

    @Test("collated channels are summed; the singleton axis is squeezed")
    func sums() {
        let collated = Collation.collate(
            mask, selection: CategorySelection([.single(0), .collated([1, 2]), .single(3)]), background: .none, squeezeAxis: 2)
        #expect(collated.shape == [1, 2, 3])
        #expect(collated.bytes == [0, 2, 0, 0, 0, 1])
    }

    @Test("background first and last: 1 where no selected channel is set")
    func background() {
        let selection = CategorySelection([.single(0), .single(3)])
        let first = Collation.collate(mask, selection: selection, background: .first, squeezeAxis: 2)
        #expect(first.shape == [1, 2, 3])
        #expect(first.bytes == [1, 0, 0, 0, 0, 1])
        let last = Collation.collate(mask, selection: selection, background: .last, squeezeAxis: 2)
        #expect(last.bytes == [0, 0, 1, 0, 1, 0])
    }

    @Test("without a squeeze axis (3D masks) the shape is kept")
    func noSqueeze() {
        let collated = Collation.collate(mask, selection: CategorySelection([.single(3)]), background: .none)
        #expect(collated.shape == [1, 2, 1, 1])
    }

    @Test("bool masks collate with logical or")
    func bools() {
        let mask = Tensor(dtype: .bool, shape: [2, 3], bytes: [1, 1, 0, 0, 0, 1])
        let collated = Collation.collate(mask, selection: CategorySelection([.collated([0, 1]), .collated([1, 2])]), background: .last)
        #expect(collated.bytes == [1, 1, 0, 0, 1, 0])
    }

    @Test("float masks sum as floats; big-endian int16 sums stay big-endian")
    func wideTypes() {
        let floats: [Float] = [0.25, 0.5, 0, 0, 0, 0]
        let floatMask = Tensor(dtype: .float32, shape: [2, 3], bytes: floats.withUnsafeBytes { Array($0) })
        let floatOut = Collation.collate(floatMask, selection: CategorySelection([.collated([0, 1]), .single(2)]), background: .first)
        let floatValues = floatOut.bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        #expect(floatValues == [0, 0.75, 0, 1, 0, 0])

        let bigEndian = DType(.int, size: 2, byteOrder: .big)
        let shorts: [Int16] = [300, 500, -2, 0]
        let shortMask = Tensor(
            dtype: bigEndian, shape: [2, 2], bytes: shorts.flatMap { [UInt8(truncatingIfNeeded: $0 >> 8), UInt8(truncatingIfNeeded: $0)] })
        let shortOut = Collation.collate(shortMask, selection: CategorySelection([.collated([0, 1])]), background: .none)
        #expect(shortOut.dtype == bigEndian)
        #expect(shortOut.bytes == [0x03, 0x20, 0xFF, 0xFE])  // 800 and -2, big-endian
    }

    @Test("integer sums saturate in the stored dtype, bool masks or: a set class never reads as unset")
    func saturation() {
        let pair = CategorySelection([.collated([0, 1])])
        let unsigned = Tensor(dtype: .uint8, shape: [2, 2], bytes: [200, 100, 255, 1])
        #expect(Collation.collate(unsigned, selection: pair, background: .first).bytes == [0, 255, 0, 255])
        let signed = Tensor(dtype: .int8, shape: [2, 2], bytes: [100, 100, 0x9C, 0x9C])  // 100 + 100, -100 + -100
        #expect(Collation.collate(signed, selection: pair, background: .none).bytes == [127, 0x80])
        // int8: summed exactly, clamped once (the channels' order does not matter).
        let four = CategorySelection([.collated([0, 1, 2, 3])])
        let mixed = Tensor(dtype: .int8, shape: [2, 4], bytes: [100, 100, 0x9C, 0x9C, 0x80, 0x80, 0x7F, 0x7F])
        #expect(Collation.collate(mixed, selection: four, background: .first).bytes == [1, 0, 0, 0xFE])  // 0 (background 1), -2
        let wide = Tensor(dtype: .uint16, shape: [1, 2], bytes: [0xFF, 0xFF, 0x01, 0x00])  // 65535 + 1
        #expect(Collation.collate(wide, selection: pair, background: .none).bytes == [0xFF, 0xFF])
        // 256 set channels in one class, past the 8-channel pattern table.
        let all = CategorySelection([.collated(Array(0..<256))])
        for dtype in [DType.uint8, .bool] {
            let many = Tensor(dtype: dtype, shape: [1, 256], bytes: [UInt8](repeating: 1, count: 256))
            #expect(Collation.collate(many, selection: all, background: .last).bytes == [1, 0].map { dtype == .bool || $0 == 0 ? $0 : 255 })
            var labels = [UInt8](repeating: 9, count: 1)
            let overlap = many.bytes.withUnsafeBytes { input in
                labels.withUnsafeMutableBytes { out in
                    Collation.labels(input, dtype: dtype, channels: 256, selection: all, background: .none, into: out, labelType: .uint8)
                }
            }
            #expect(overlap == nil && labels == [1])
        }
    }

    @Test("conversion follows astype: truncation, byte swaps, half floats, bools")
    func conversion() {
        let floats: [Float] = [1.9, -1.9, 300, 0.5]
        let tensor = Tensor(dtype: .float32, shape: [4], bytes: floats.withUnsafeBytes { Array($0) })
        #expect(Conversion.convert(tensor, to: .int16).bytes == [1, 0, 0xFF, 0xFF, 0x2C, 0x01, 0, 0])
        #expect(Conversion.convert(tensor, to: .bool).bytes == [1, 1, 1, 1])
        let half = Conversion.convert(tensor, to: .float16)
        #expect(half.dtype == .float16)
        #expect(half.bytes.withUnsafeBytes { Array($0.bindMemory(to: Float16.self)) } == floats.map { Float16($0) })
        let swapped = Conversion.convert(Tensor(dtype: DType(.int, size: 2, byteOrder: .big), shape: [1], bytes: [0x01, 0x02]), to: .int16)
        #expect(swapped.bytes == [0x02, 0x01])
        #expect(swapped.dtype.numpyDescriptor == "<i2")
    }
}

@Suite("NPY and NPZ encodings")
struct EncodingTests {
    @Test("the npy header is NumPy's: 64-byte aligned dict with descr, order and shape")
    func npyHeader() throws {
        let header = NPY.header(for: TensorLayout(dtype: .float32, shape: [384, 384, 1]))
        #expect(header.count == 128)
        let text = String(decoding: header[10...], as: UTF8.self)
        #expect(text.hasPrefix("{'descr': '<f4', 'fortran_order': False, 'shape': (384, 384, 1), }"))
        #expect(text.hasSuffix(" \n"))
        #expect(String(decoding: NPY.header(for: TensorLayout(dtype: .bool, shape: [5]))[10...], as: UTF8.self).contains("'shape': (5,)"))
        #expect(String(decoding: NPY.header(for: TensorLayout(dtype: .uint8, shape: []))[10...], as: UTF8.self).contains("'shape': ()"))
    }

    @Test("an npz reads back through its central directory, CRCs and all")
    func npz() throws {
        let image = Tensor(dtype: .float32, shape: [2, 3], bytes: (0..<24).map(UInt8.init))
        let mask = Tensor(dtype: .bool, shape: [2, 3, 1], bytes: [1, 0, 1, 0, 1, 1])
        let bytes = NPZWriter.encode([("image", image), ("mask", mask)])
        let members = try NumpyDecoding.npz(bytes)
        #expect(members["image"]?.shape == [2, 3])
        #expect(members["image"]?.data == image.bytes)
        #expect(members["mask"]?.descriptor == "|b1")
        #expect(members["mask"]?.data == mask.bytes)
    }
}
