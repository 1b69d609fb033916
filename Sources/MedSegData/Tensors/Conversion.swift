public import HDF5

/// `?dtype=`: NumPy's `astype` into a little-endian type.
public enum Conversion {
    public static func convert(_ tensor: Tensor, to target: DType) -> Tensor {
        let target = target.withByteOrder(.little)
        if tensor.dtype == target { return tensor }
        var output = Tensor(zeros: target, shape: tensor.shape)
        if tensor.dtype.withByteOrder(.little) == target {
            // Same type, other byte order: swap each element's bytes.
            let size = target.size
            tensor.bytes.withUnsafeBytes { input in
                output.bytes.withUnsafeMutableBytes { out in
                    for element in 0..<tensor.elementCount {
                        for byte in 0..<size { out[element * size + byte] = input[element * size + size - 1 - byte] }
                    }
                }
            }
            return output
        }
        let source = ElementCodec(tensor.dtype)
        let destination = ElementCodec(target)
        tensor.bytes.withUnsafeBytes { input in
            output.bytes.withUnsafeMutableBytes { out in
                for element in 0..<tensor.elementCount {
                    destination.store(source.load(input, element), out, element)
                }
            }
        }
        return output
    }
}
