import HDF5

/// NumPy's `.npy` format, version 1.0: a header describing dtype and shape, then the raw bytes.
/// `np.load(io.BytesIO(body))` reads what this writes.
public enum NPY {
    /// The header for an array of this layout (magic, version, length, dict, padding).
    /// Its length is a multiple of 64, as NumPy writes it, so the data that follows is aligned.
    public static func header(for layout: TensorLayout) -> [UInt8] {
        let shape: String
        switch layout.shape.count {
        case 0: shape = "()"
        case 1: shape = "(\(layout.shape[0]),)"
        default: shape = "(" + layout.shape.map(String.init).joined(separator: ", ") + ")"
        }
        var dictionary = Array("{'descr': '\(layout.dtype.numpyDescriptor)', 'fortran_order': False, 'shape': \(shape), }".utf8)
        let prefix = 10  // magic (6) + version (2) + header length (2)
        let total = prefix + dictionary.count + 1
        let padded = (total + 63) / 64 * 64
        dictionary += [UInt8](repeating: 0x20, count: padded - total)
        dictionary.append(0x0A)
        let length = UInt16(dictionary.count)
        return [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(length & 0xFF), UInt8(length >> 8)] + dictionary
    }

    /// A whole `.npy` file in memory.
    public static func encode(_ tensor: Tensor) -> [UInt8] {
        header(for: TensorLayout(dtype: tensor.dtype, shape: tensor.shape)) + tensor.bytes
    }
}
