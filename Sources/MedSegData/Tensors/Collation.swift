public import HDF5

/// MedSegPy's `collect_mask` and `add_background_labels` over raw buffers.
public enum Collation {
    /// Collates the last axis of `mask` (shape `S + [C]`).
    ///
    /// Output channel k is the sum, in the stored dtype, of the stored channels listed at
    /// position k (bool: logical or). `squeezeAxis` is removed from `S` when its length is 1 (the
    /// stored singleton axis of 2D slice masks). The background channel is 1 where every
    /// selected channel is 0.
    public static func collate(
        _ mask: Tensor, selection: CategorySelection, background: BackgroundChannel, squeezeAxis: Int? = nil
    ) -> Tensor {
        let channels = mask.shape.last ?? 1
        var spatial = Array(mask.shape.dropLast())
        if let axis = squeezeAxis, axis < spatial.count, spatial[axis] == 1 { spatial.remove(at: axis) }
        let outputChannels = selection.ids.count + (background == .none ? 0 : 1)
        var output = Tensor(zeros: mask.dtype, shape: spatial + [outputChannels])
        mask.bytes.withUnsafeBytes { input in
            output.bytes.withUnsafeMutableBytes { out in
                collate(input, dtype: mask.dtype, channels: channels, selection: selection, background: background, into: out)
            }
        }
        return output
    }

    /// Collates `input` (pixels x `channels` elements of `dtype`) into `out` (pixels x C' elements),
    /// writing every output byte.
    public static func collate(
        _ input: UnsafeRawBufferPointer, dtype: DType, channels: Int, selection: CategorySelection, background: BackgroundChannel,
        into out: UnsafeMutableRawBufferPointer
    ) {
        let pixels = channels == 0 ? 0 : input.count / dtype.size / channels
        let outputChannels = selection.ids.count + (background == .none ? 0 : 1)
        let offset = background == .first ? 1 : 0
        let groups = selection.ids.map(\.channels)
        if dtype.size == 1 {
            collateBytes(
                input, out, pixels: pixels, channels: channels, groups: groups, outputChannels: outputChannels,
                offset: offset, background: background, sum: ByteSum(dtype))
            return
        }
        let codec = ElementCodec(dtype)
        let one = Number.integer(1)
        let zero = Number.integer(0)
        for pixel in 0..<pixels {
            let source = pixel * channels
            let target = pixel * outputChannels
            var allZero = true
            for (k, group) in groups.enumerated() {
                var sum = codec.load(input, source + group[0])
                for channel in group.dropFirst() { sum = sum + codec.load(input, source + channel) }
                codec.store(sum.saturated(for: dtype), out, target + k + offset)
                if !codec.isZero(UnsafeRawBufferPointer(out), target + k + offset) { allZero = false }
            }
            if background != .none {
                codec.store(allZero ? one : zero, out, background == .first ? target : target + outputChannels - 1)
            }
        }
    }

    /// One pixel of a byte mask, exactly (values other than 0 and 1 on the pattern path).
    private static func collatePixel(
        _ from: UnsafePointer<UInt8>, _ to: UnsafeMutablePointer<UInt8>, groups: [[Int]], offset: Int, background: BackgroundChannel, sum: ByteSum,
        width: Int
    ) {
        var any: UInt8 = 0
        for (k, group) in groups.enumerated() {
            let value = sum.sum(from, group)
            to[k + offset] = value
            any |= value
        }
        if background != .none { to[background == .first ? 0 : width - 1] = any == 0 ? 1 : 0 }
    }

    /// The hot path: uint8, int8 and bool masks (`ByteSum`: or, or sums that saturate). Class by
    /// class over all pixels, so each inner loop is one strided copy or add.
    private static func collateBytes(
        _ input: UnsafeRawBufferPointer, _ output: UnsafeMutableRawBufferPointer, pixels: Int, channels: Int,
        groups: [[Int]], outputChannels: Int, offset: Int, background: BackgroundChannel, sum: ByteSum
    ) {
        guard pixels > 0, let source = input.baseAddress?.assumingMemoryBound(to: UInt8.self),
            let target = output.baseAddress?.assumingMemoryBound(to: UInt8.self)
        else { return }
        let stride = channels
        let width = outputChannels
        if channels <= maxPatternChannels, width <= 8 {
            let table = collationTable(
                channels: channels, groups: groups, outputChannels: width, offset: offset, background: background, isBool: sum == .or)
            let raw = UnsafeMutableRawPointer(target)
            let wordPixels = output.count >= 8 ? (output.count - 8) / width + 1 : 0
            table.withUnsafeBufferPointer { table in
                forEachPattern(source, count: input.count, channels: channels, pixels: pixels) { pixel, bits in
                    let entry = table[bits]
                    if pixel < wordPixels {
                        // 8 bytes: the next pixel's slot is written after this one.
                        raw.storeBytes(of: entry.littleEndian, toByteOffset: pixel * width, as: UInt64.self)
                    } else {
                        for k in 0..<width { target[pixel * width + k] = UInt8(truncatingIfNeeded: entry >> UInt64(8 * k)) }
                    }
                } other: { pixel in
                    collatePixel(
                        source + pixel * stride, target + pixel * width, groups: groups, offset: offset, background: background, sum: sum,
                        width: width)
                }
            }
            return
        }
        for (k, group) in groups.enumerated() {
            let to = target + k + offset
            switch (group.count, sum) {
            case (1, _):
                let from = source + group[0]
                for pixel in 0..<pixels { to[pixel * width] = sum.finish(from[pixel * stride]) }
            case (2, .unsigned):
                // The common collated pair, saturating without a branch (the compiler vectorises it).
                let first = source + group[0]
                let second = source + group[1]
                for pixel in 0..<pixels {
                    to[pixel * width] = UInt8(truncatingIfNeeded: min(UInt16(first[pixel * stride]) &+ UInt16(second[pixel * stride]), 255))
                }
            case (_, .signed):
                // Signed partial sums go up and down: summed per pixel, clamped once.
                for pixel in 0..<pixels { to[pixel * width] = sum.sum(source + pixel * stride, group) }
            default:
                let from = source + group[0]
                for pixel in 0..<pixels { to[pixel * width] = from[pixel * stride] }
                for channel in group.dropFirst() {
                    let more = source + channel
                    for pixel in 0..<pixels { to[pixel * width] = sum.add(to[pixel * width], more[pixel * stride]) }
                }
                if sum == .or {
                    for pixel in 0..<pixels { to[pixel * width] = to[pixel * width] == 0 ? 0 : 1 }
                }
            }
        }
        guard background != .none else { return }
        let classes = target + offset
        let backgroundChannel = target + (background == .first ? 0 : width - 1)
        for pixel in 0..<pixels {
            var any: UInt8 = 0
            for k in 0..<groups.count { any |= classes[pixel * width + k] }
            backgroundChannel[pixel * width] = any == 0 ? 1 : 0
        }
    }
}
