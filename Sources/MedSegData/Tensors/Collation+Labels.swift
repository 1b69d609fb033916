public import HDF5

/// `mask_format=labels`: the collated classes as one class index per pixel.
extension Collation {
    /// Two classes set at one pixel: a class-index map cannot say it.
    public struct Overlap: Sendable {
        /// The pixel's index in the buffer.
        public var pixel: Int
        /// Positions of the two classes in the selection.
        public var classes: (Int, Int)
    }

    /// Writes the class index of each of the `pixels x channels` stored elements of `input` into
    /// `out` (elements of `labelType`, uint8 or uint16): 0 where no class is set, k + 1 where
    /// class k is (with `background: .last`, k and C instead). A class is set where its
    /// collated value (as `collate` computes it) is non-zero. Returns the first overlap found.
    public static func labels(
        _ input: UnsafeRawBufferPointer, dtype: DType, channels: Int, selection: CategorySelection, background: BackgroundChannel,
        into out: UnsafeMutableRawBufferPointer, labelType: DType
    ) -> Overlap? {
        let pixels = channels == 0 || dtype.size == 0 ? 0 : input.count / dtype.size / channels
        let groups = selection.ids.map(\.channels)
        if labelType.size == 1 {
            return label(input, dtype: dtype, channels: channels, groups: groups, pixels: pixels, background: background, into: out, as: UInt8.self)
        }
        return label(input, dtype: dtype, channels: channels, groups: groups, pixels: pixels, background: background, into: out, as: UInt16.self)
    }

    private static func label<Label: FixedWidthInteger & UnsignedInteger>(
        _ input: UnsafeRawBufferPointer, dtype: DType, channels: Int, groups: [[Int]], pixels: Int, background: BackgroundChannel,
        into out: UnsafeMutableRawBufferPointer, as: Label.Type
    ) -> Overlap? {
        let size = MemoryLayout<Label>.size
        guard pixels > 0, let target = out.baseAddress else { return nil }
        target.initializeMemory(as: UInt8.self, repeating: 0, count: pixels * size)
        /// Marks `pixel` as class `k`, or reports the class already there.
        func mark(_ pixel: Int, _ k: Int) -> Overlap? {
            let existing = Label(littleEndian: target.loadUnaligned(fromByteOffset: pixel * size, as: Label.self))
            guard existing == 0 else { return Overlap(pixel: pixel, classes: (Int(existing) - 1, k)) }
            target.storeBytes(of: Label(k + 1).littleEndian, toByteOffset: pixel * size, as: Label.self)
            return nil
        }
        if dtype.size == 1, let source = input.baseAddress?.assumingMemoryBound(to: UInt8.self) {
            // The hot path: uint8, int8 and bool masks; sums wrap as in `collate`.
            if channels <= maxPatternChannels {
                // One-hot pixels from a table; an overlap, or values other than 0 and 1, send the
                // whole buffer through the exact class-by-class pass below, which names the pixel.
                var exact = true
                labelTable(channels: channels, groups: groups, background: background).withUnsafeBufferPointer { table in
                    forEachPattern(source, count: input.count, channels: channels, pixels: pixels) { pixel, bits in
                        let label = table[bits]
                        if label == overlapLabel { exact = false }
                        target.storeBytes(of: Label(truncatingIfNeeded: label).littleEndian, toByteOffset: pixel * size, as: Label.self)
                    } other: { _ in
                        exact = false
                    }
                }
                if exact { return nil }
                target.initializeMemory(as: UInt8.self, repeating: 0, count: pixels * size)
            }
            let sum = ByteSum(dtype)
            for (k, group) in groups.enumerated() {
                if group.count == 1 {
                    let from = source + group[0]
                    for pixel in 0..<pixels where from[pixel * channels] != 0 {
                        if let overlap = mark(pixel, k) { return overlap }
                    }
                    continue
                }
                for pixel in 0..<pixels where sum.sum(source + pixel * channels, group) != 0 {
                    if let overlap = mark(pixel, k) { return overlap }
                }
            }
        } else {
            let codec = ElementCodec(dtype)
            // The sum is stored in the mask's dtype before it is tested, as `collate` stores it
            // (integers wrap, floats round).
            let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: max(dtype.size, 8), alignment: 8)
            defer { scratch.deallocate() }
            for (k, group) in groups.enumerated() {
                for pixel in 0..<pixels {
                    let base = pixel * channels
                    var sum = codec.load(input, base + group[0])
                    for channel in group.dropFirst() { sum = sum + codec.load(input, base + channel) }
                    codec.store(sum.saturated(for: dtype), scratch, 0)
                    if !codec.isZero(UnsafeRawBufferPointer(scratch), 0), let overlap = mark(pixel, k) { return overlap }
                }
            }
        }
        if background == .last {
            // Class k + 1 becomes k, none (0) becomes C: the index of the last channel.
            let none = Label(groups.count)
            for pixel in 0..<pixels {
                let value = Label(littleEndian: target.loadUnaligned(fromByteOffset: pixel * size, as: Label.self))
                target.storeBytes(of: (value == 0 ? none : value - 1).littleEndian, toByteOffset: pixel * size, as: Label.self)
            }
        }
        return nil
    }
}
