import HDF5  // DType only: the server never calls the HDF5 library.
import MedSegData
import NIOCore

extension ByteBuffer {
    /// Named arrays as one `.npz`, written straight into the buffer (no archive-sized copy).
    static func npz(_ arrays: [(name: String, tensor: Tensor)], compression: MemberCompression) -> ByteBuffer {
        let writer = NPZWriter(
            members: arrays.map {
                NPZMember(
                    name: $0.name + ".npy", npyHeader: NPY.header(for: TensorLayout(dtype: $0.tensor.dtype, shape: $0.tensor.shape)),
                    dataLength: $0.tensor.byteCount, compression: compression.method(forMember: $0.name))
            })
        var buffer = ByteBufferAllocator().buffer(capacity: writer.storedLength)
        for (index, array) in arrays.enumerated() {
            buffer.writeBytes(writer.startMember(index))
            _ = array.tensor.bytes.withUnsafeBytes { data in
                if let compressed = writer.encode(data) {
                    buffer.writeBytes(compressed)
                } else {
                    buffer.writeBytes(data)
                }
            }
            buffer.writeBytes(writer.endMember())
        }
        buffer.writeBytes(writer.trailer())
        return buffer
    }
}
