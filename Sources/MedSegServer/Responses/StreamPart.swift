import MedSegData
import NIOCore

/// One piece of a tensor body, in order. Pieces of an `.npz` go through its `NPZWriter`, which
/// must see them in body order (it keeps each member's CRC, deflate stream and offset).
enum StreamPart: Sendable {
    case bytes([UInt8])
    /// An array, chunk by chunk; inside an npz member its bytes pass through the member's writer.
    case array(any TensorSource, NPZWriter?)
    /// An npz member's local header (and, when stored, its `.npy` header).
    case memberStart(NPZWriter, Int)
    /// The end of the current member's data and its data descriptor.
    case memberEnd(NPZWriter)
    /// The central directory and end records.
    case trailer(NPZWriter)

    /// The bytes of a part other than an array (arrays are written chunk by chunk).
    var bytes: [UInt8] {
        switch self {
        case .bytes(let bytes): bytes
        case .array: []
        case .memberStart(let writer, let index): writer.startMember(index)
        case .memberEnd(let writer): writer.endMember()
        case .trailer(let writer): writer.trailer()
        }
    }

    var source: (any TensorSource)? {
        if case .array(let source, _) = self { return source }
        return nil
    }
}

extension ByteBuffer {
    /// Appends chunk `index` of `source`: read straight into this buffer's memory, or, for a
    /// deflated npz member, read aside and appended compressed. Blocking: call it on the pool.
    mutating func writeChunk(_ index: Int, of source: any TensorSource, through writer: NPZWriter? = nil) throws(TensorError) {
        if let writer, !writer.storesCurrentMemberAsIs {
            let data = try source.readChunk(index)
            let compressed = data.withUnsafeBytes { writer.encode($0) } ?? data
            writeBytes(compressed)
            return
        }
        let count = source.chunkByteCount(index)
        var failure: TensorError?
        writeWithUnsafeMutableBytes(minimumWritableBytes: count) { free in
            let target = UnsafeMutableRawBufferPointer(rebasing: free[0..<count])
            do throws(TensorError) {
                try source.readChunk(index, into: target)
                _ = writer?.encode(UnsafeRawBufferPointer(target))
            } catch {
                failure = error
            }
            return count
        }
        if let failure { throw failure }
    }
}
