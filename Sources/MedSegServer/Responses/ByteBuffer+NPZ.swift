import MedSegData
import NIOCore

extension ByteBuffer {
    /// Named arrays as one `.npz`, written straight into the buffer (no archive-sized copy).
    static func npz(_ arrays: [(name: String, tensor: Tensor)], compression: MemberCompression) -> ByteBuffer {
        var buffer = ByteBuffer()
        NPZWriter.write(arrays, compression: compression, capacity: { buffer.reserveCapacity($0) }, into: { buffer.writeBytes($0) })
        return buffer
    }
}
