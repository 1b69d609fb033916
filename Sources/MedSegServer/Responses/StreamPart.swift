import MedSegData
import NIOCore

/// One piece of a tensor body, in order. CRC markers bracket an npz member's `.npy` bytes.
enum StreamPart: Sendable {
    case bytes([UInt8])
    case array(any TensorSource)
    /// Starts a CRC-32 over the member's `.npy` header and the arrays that follow.
    case crcStart([UInt8])
    /// Ends it: the member's data descriptor, given the CRC.
    case crcEnd(@Sendable (UInt32) -> [UInt8])
    /// The central directory, given every member's CRC.
    case trailer(@Sendable ([UInt32]) -> [UInt8])
}

/// Turns parts into bytes, keeping the CRC state of npz members.
struct BodyAssembler: Sendable {
    private var crc: CRC32?
    private var crcs: [UInt32] = []

    /// The bytes of a part other than an array (arrays are written chunk by chunk by the caller,
    /// which passes their bytes to `add`).
    mutating func bytes(for part: StreamPart) -> [[UInt8]] {
        switch part {
        case .bytes(let bytes):
            return [bytes]
        case .array:
            return []
        case .crcStart(let npyHeader):
            // The header itself went out with the member's local header.
            crc = CRC32()
            crc!.update(npyHeader)
            return []
        case .crcEnd(let suffix):
            let value = crc?.value ?? 0
            crc = nil
            crcs.append(value)
            return [suffix(value)]
        case .trailer(let trailer):
            return [trailer(crcs)]
        }
    }

    /// Counts array bytes into the running CRC (of an npz member; nothing otherwise).
    mutating func add(_ bytes: UnsafeRawBufferPointer) {
        crc?.update(bytes)
    }
}

extension ByteBuffer {
    /// Appends chunk `index` of `source`, read straight into this buffer's memory.
    mutating func writeChunk(_ index: Int, of source: any TensorSource) throws(TensorError) {
        var noCRC = BodyAssembler()
        try writeChunk(index, of: source, crc: &noCRC)
    }

    /// Appends chunk `index` of `source`, read straight into this buffer's memory.
    mutating func writeChunk(_ index: Int, of source: any TensorSource, crc: inout BodyAssembler) throws(TensorError) {
        let count = source.chunkByteCount(index)
        var failure: TensorError?
        writeWithUnsafeMutableBytes(minimumWritableBytes: count) { free in
            let target = UnsafeMutableRawBufferPointer(rebasing: free[0..<count])
            do throws(TensorError) {
                try source.readChunk(index, into: target)
                crc.add(UnsafeRawBufferPointer(target))
            } catch {
                failure = error
            }
            return count
        }
        if let failure { throw failure }
    }
}
