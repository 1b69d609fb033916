import HDF5
import MedSegData
import TestSupport
import Testing

@Suite("mask_format=labels: class indices against argmax of the collated channels")
struct LabelTests {
    /// `pixels x channels` labels of `selection` through the transform, as a source computes them.
    private func labels(
        _ mask: [UInt8], dtype: DType = .uint8, channels: Int, _ selection: CategorySelection, background: BackgroundChannel = .none
    ) throws(TensorError) -> [Int] {
        let transform = MaskTransform(selection: selection, background: background, format: .labels, subject: "test mask")
        let labelType = transform.outputDType(stored: dtype)
        let pixels = mask.count / dtype.size / channels
        var out = [UInt8](repeating: 0xAA, count: pixels * labelType.size)
        var failure: TensorError?
        mask.withUnsafeBytes { input in
            out.withUnsafeMutableBytes { target in
                do throws(TensorError) {
                    try transform.apply(input, dtype: dtype, channels: channels, into: target) { [$0 / 3, $0 % 3] }
                } catch {
                    failure = error
                }
            }
        }
        if let failure { throw failure }
        return labelType.size == 1 ? out.map(Int.init) : stride(from: 0, to: out.count, by: 2).map { Int(out[$0]) | Int(out[$0 + 1]) << 8 }
    }

    /// numpy's argmax over the last axis of a collated mask.
    private func argmax(_ collated: Tensor) -> [Int] {
        let channels = collated.shape.last!
        return stride(from: 0, to: collated.bytes.count, by: channels).map { start in
            let pixel = collated.bytes[start..<(start + channels)]
            return pixel.firstIndex(of: pixel.max()!)! - start
        }
    }

    @Test("labels equal argmax of the collated mask with background first (none, first) or last")
    func matchesArgmax() throws {
        // 6 pixels x 4 channels: none, ch0, ch1, ch2, ch3, ch1+ch2 (one class once collated).
        let stored: [UInt8] = [0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 1, 1, 0]
        let selection = CategorySelection([.single(0), .collated([1, 2]), .single(3)])
        let mask = Tensor(dtype: .uint8, shape: [6, 4], bytes: stored)
        for background in [BackgroundChannel.none, .first, .last] {
            let collated = Collation.collate(mask, selection: selection, background: background == .last ? .last : .first)
            #expect(try labels(stored, channels: 4, selection, background: background) == argmax(collated))
        }
        #expect(try labels(stored, channels: 4, selection) == [0, 1, 2, 2, 3, 2])
        #expect(try labels(stored, channels: 4, selection, background: .last) == [3, 0, 1, 1, 2, 1])
    }

    @Test("two classes at one pixel is a 422 naming the pixel and both classes")
    func overlap() {
        let stored: [UInt8] = [0, 0, 1, 0, 0, 0, 0, 1, 1, 1, 0, 0]  // 3 pixels x 4 channels; pixel 2 holds channels 0 and 1
        let selection = CategorySelection([.single(0), .single(1)])
        #expect {
            try labels(stored, channels: 4, selection)
        } throws: { error in
            let error = error as! TensorError
            return error.kind == .unprocessable && error.message.contains("classes 0 and 1") && error.message.contains("pixel (0, 2)")
                && error.message.contains("test mask")
        }
    }

    @Test("more than 255 classes take uint16 labels; wider masks go the generic way")
    func wideLabels() throws {
        // 300 channels, 3 pixels: channel 0, channel 299, none.
        var stored = [UInt8](repeating: 0, count: 3 * 300)
        stored[0] = 1
        stored[300 + 299] = 1
        let selection = CategorySelection((0..<300).map { .single($0) })
        let transform = MaskTransform(selection: selection, background: .none, format: .labels, subject: "x")
        #expect(transform.outputDType(stored: .uint8) == .uint16)
        #expect(transform.outputShape(spatial: [3]) == [3])
        #expect(try labels(stored, channels: 300, selection) == [1, 300, 0])
        #expect(try labels(stored, channels: 300, selection, background: .last) == [0, 299, 300])
        // int16 masks (the generic path): a class whose channels sum to zero is not set, as in `collate`.
        let int16: [Int16] = [1, 0, 0, 1, -1, 0, 0, 0, 7]
        let bytes = int16.flatMap { [UInt8(truncatingIfNeeded: $0), UInt8(truncatingIfNeeded: $0 >> 8)] }
        let pairs = CategorySelection([.collated([0, 1]), .single(2)])
        #expect(try labels(bytes, dtype: .int16, channels: 3, pairs) == [1, 0, 2])
    }
}

@Suite("npz members deflated")
struct DeflatedNPZTests {
    @Test("compression=deflate stores the mask deflated (method 8) and the image as is; both read back exactly")
    func deflatedMask() throws {
        let image = Tensor(dtype: .float32, shape: [64, 64], bytes: (0..<(64 * 64 * 4)).map { UInt8($0 % 251) })
        let mask = Tensor(dtype: .uint8, shape: [64, 64], bytes: (0..<(64 * 64)).map { $0 / 64 > 40 ? 2 : 0 })
        let bytes = NPZWriter.encode([("image", image), ("mask", mask)], compression: .deflate)
        let (members, methods) = try NumpyDecoding.npzWithMethods(bytes)
        #expect(methods == ["image": 0, "mask": 8])
        #expect(members["image"]?.data == image.bytes)
        #expect(members["mask"]?.data == mask.bytes)
        #expect(members["mask"]?.shape == [64, 64])
        #expect(bytes.count < NPZWriter.encode([("image", image), ("mask", mask)]).count - 3000)
    }
}
