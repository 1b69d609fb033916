import HDF5

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
        let pixels = channels == 0 ? 0 : mask.elementCount / channels
        var spatial = Array(mask.shape.dropLast())
        if let axis = squeezeAxis, axis < spatial.count, spatial[axis] == 1 { spatial.remove(at: axis) }
        let outputChannels = selection.ids.count + (background == .none ? 0 : 1)
        let offset = background == .first ? 1 : 0
        var output = Tensor(zeros: mask.dtype, shape: spatial + [outputChannels])
        let groups = selection.ids.map(\.channels)
        let size = mask.dtype.size

        mask.bytes.withUnsafeBytes { input in
            output.bytes.withUnsafeMutableBytes { out in
                if size == 1 {
                    // uint8, int8 and bool masks: byte sums that wrap as NumPy's do.
                    let isBool = mask.dtype.kind == .bool
                    for pixel in 0..<pixels {
                        let source = pixel * channels
                        let target = pixel * outputChannels
                        var any: UInt8 = 0
                        for (k, group) in groups.enumerated() {
                            var sum: UInt8 = 0
                            for channel in group { sum = sum &+ input[source + channel] }
                            if isBool { sum = sum == 0 ? 0 : 1 }
                            out[target + k + offset] = sum
                            any |= sum
                        }
                        if background == .first { out[target] = any == 0 ? 1 : 0 }
                        if background == .last { out[target + outputChannels - 1] = any == 0 ? 1 : 0 }
                    }
                    return
                }
                let codec = ElementCodec(mask.dtype)
                let one = Number.integer(1)
                for pixel in 0..<pixels {
                    let source = pixel * channels
                    let target = pixel * outputChannels
                    var allZero = true
                    for (k, group) in groups.enumerated() {
                        var sum = codec.load(input, source + group[0])
                        for channel in group.dropFirst() { sum = sum + codec.load(input, source + channel) }
                        codec.store(sum, out, target + k + offset)
                        if !codec.isZero(UnsafeRawBufferPointer(out), target + k + offset) { allZero = false }
                    }
                    if background != .none {
                        let index = background == .first ? target : target + outputChannels - 1
                        if allZero { codec.store(one, out, index) }
                    }
                }
            }
        }
        return output
    }
}
