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
        } else {
            let reader = ElementCodec(source)
            let writer = ElementCodec(target)
            for element in 0..<count { writer.store(reader.load(input, element), out, element) }
        }
    }
}
