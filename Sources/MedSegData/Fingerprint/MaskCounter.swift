internal import HDF5

/// One pass over a mask's stored channels: voxels set per channel and per collated class, and a
/// seeded reservoir sample of each channel's set voxels (the foreground index).
enum MaskCounter {
    struct Counts {
        var channels: [Int]
        var classes: [Int]
        var foreground: [[UInt32]]
    }

    /// `mask`: every stored channel, `... x C`. Class counts are left empty when `classes`
    /// reads a channel the mask lacks.
    static func count(_ mask: any TensorSource, classes selection: CategorySelection, seed: String) throws(TensorError) -> Counts {
        let channels = mask.layout.shape.last ?? 1
        let dtype = mask.layout.dtype
        let codec = ElementCodec(dtype)
        let countsClasses = selection.maxChannel < channels
        var counts = Counts(
            channels: Array(repeating: 0, count: channels), classes: Array(repeating: 0, count: countsClasses ? selection.ids.count : 0),
            foreground: Array(repeating: [], count: channels))
        // Linear indices are 32-bit: a volume with more voxels gets no foreground index.
        let indexed = mask.layout.elementCount / max(channels, 1) <= Int(UInt32.max)
        var seen = Array(repeating: 0, count: channels)
        var random = SeededRandom(text: seed)
        let limit = FingerprintComputer.foregroundSamplesPerChannel
        var offset = 0
        for chunk in 0..<mask.chunkCount {
            let raw = try mask.readChunk(chunk)
            let pixels = raw.count / max(1, dtype.size * channels)
            raw.withUnsafeBytes { bytes in
                for pixel in 0..<pixels {
                    for channel in 0..<channels {
                        let element = pixel * channels + channel
                        let isSet = dtype.size == 1 ? bytes[element] != 0 : !codec.isZero(bytes, element)
                        guard isSet else { continue }
                        counts.channels[channel] += 1
                        guard indexed else { continue }
                        // Reservoir sampling: every set voxel has the same chance to be kept.
                        let index = UInt32(truncatingIfNeeded: offset + pixel)
                        if seen[channel] < limit {
                            counts.foreground[channel].append(index)
                        } else {
                            let slot = random.below(seen[channel] + 1)
                            if slot < limit { counts.foreground[channel][slot] = index }
                        }
                        seen[channel] += 1
                    }
                }
            }
            if countsClasses {
                let collated = Collation.collate(
                    Tensor(dtype: dtype, shape: [pixels, channels], bytes: raw), selection: selection, background: .none)
                let classCount = selection.ids.count
                collated.bytes.withUnsafeBytes { bytes in
                    for element in 0..<(pixels * classCount) where dtype.size == 1 ? bytes[element] != 0 : !codec.isZero(bytes, element) {
                        counts.classes[element % classCount] += 1
                    }
                }
            }
            offset += pixels
        }
        // Sorted: the index reads the same whatever order the reservoir left it in.
        counts.foreground = counts.foreground.map { $0.sorted() }
        return counts
    }
}
