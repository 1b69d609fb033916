/// NumPy's `.npz`: an uncompressed ZIP archive of `.npy` members, laid out before any byte is
/// written so that the response has a `Content-Length` and can be streamed member by member.
///
/// Members carry a data descriptor (their CRC-32 follows their data), so nothing has to be
/// held in memory to compute it first; ZIP64 records are used when sizes or offsets need them.
public struct NPZLayout: Sendable {
    public struct Member: Sendable {
        public var name: String
        /// The member's `.npy` header.
        public var npyHeader: [UInt8]
        /// Bytes of array data after the header.
        public var dataLength: Int

        public init(name: String, npyHeader: [UInt8], dataLength: Int) {
            self.name = name
            self.npyHeader = npyHeader
            self.dataLength = dataLength
        }

        var size: Int { npyHeader.count + dataLength }
    }

    public let members: [Member]
    /// Where each member's local header starts.
    let offsets: [Int]
    let centralDirectoryOffset: Int
    let zip64: Bool
    public let totalLength: Int

    public init(members: [Member]) {
        self.members = members
        let zip64 =
            members.contains { $0.size >= 0xFFFF_FFFF }
            || members.reduce(0) { $0 + $1.size + 200 } >= 0xFFFF_FFFF
        self.zip64 = zip64
        var offsets: [Int] = []
        var position = 0
        for member in members {
            offsets.append(position)
            position += Self.localHeaderLength(member, zip64: zip64) + member.size + (zip64 ? 24 : 16)
        }
        self.offsets = offsets
        self.centralDirectoryOffset = position
        let centralDirectory = members.reduce(0) { $0 + 46 + Array($1.name.utf8).count + (zip64 ? 28 : 0) }
        self.totalLength = position + centralDirectory + (zip64 ? 56 + 20 : 0) + 22
    }

    /// The bytes before member `index`'s `.npy` data: its local header, then its `.npy` header.
    public func memberPrefix(_ index: Int) -> [UInt8] {
        let member = members[index]
        let name = Array(member.name.utf8)
        var bytes = ZIPBytes()
        bytes.u32(0x0403_4B50)
        bytes.u16(zip64 ? 45 : 20)  // version needed
        bytes.u16(0x0008)  // sizes and CRC in the data descriptor
        bytes.u16(0)  // stored
        bytes.u16(0)
        bytes.u16(0x0021)  // 1980-01-01 00:00: the same bytes for the same array (ETags)
        bytes.u32(0)
        bytes.u32(zip64 ? 0xFFFF_FFFF : 0)
        bytes.u32(zip64 ? 0xFFFF_FFFF : 0)
        bytes.u16(UInt16(name.count))
        bytes.u16(zip64 ? 20 : 0)
        bytes.append(name)
        if zip64 {
            bytes.u16(0x0001)
            bytes.u16(16)
            bytes.u64(0)
            bytes.u64(0)
        }
        bytes.append(member.npyHeader)
        return bytes.bytes
    }

    /// The data descriptor after member `index`, given the CRC-32 of its `.npy` bytes.
    public func memberSuffix(_ index: Int, crc: UInt32) -> [UInt8] {
        let size = members[index].size
        var bytes = ZIPBytes()
        bytes.u32(0x0807_4B50)
        bytes.u32(crc)
        if zip64 {
            bytes.u64(UInt64(size))
            bytes.u64(UInt64(size))
        } else {
            bytes.u32(UInt32(size))
            bytes.u32(UInt32(size))
        }
        return bytes.bytes
    }

    /// The central directory and end records, given every member's CRC-32.
    public func trailer(crcs: [UInt32]) -> [UInt8] {
        var bytes = ZIPBytes()
        for (index, member) in members.enumerated() {
            let name = Array(member.name.utf8)
            bytes.u32(0x0201_4B50)
            bytes.u16(zip64 ? 45 : 20)  // made by
            bytes.u16(zip64 ? 45 : 20)  // needed
            bytes.u16(0x0008)
            bytes.u16(0)
            bytes.u16(0)
            bytes.u16(0x0021)
            bytes.u32(crcs[index])
            bytes.u32(zip64 ? 0xFFFF_FFFF : UInt32(member.size))
            bytes.u32(zip64 ? 0xFFFF_FFFF : UInt32(member.size))
            bytes.u16(UInt16(name.count))
            bytes.u16(zip64 ? 28 : 0)
            bytes.u16(0)  // comment
            bytes.u16(0)  // disk
            bytes.u16(0)  // internal attributes
            bytes.u32(0)  // external attributes
            bytes.u32(zip64 ? 0xFFFF_FFFF : UInt32(offsets[index]))
            bytes.append(name)
            if zip64 {
                bytes.u16(0x0001)
                bytes.u16(24)
                bytes.u64(UInt64(member.size))
                bytes.u64(UInt64(member.size))
                bytes.u64(UInt64(offsets[index]))
            }
        }
        let directorySize = bytes.bytes.count
        if zip64 {
            let recordOffset = centralDirectoryOffset + directorySize
            bytes.u32(0x0606_4B50)
            bytes.u64(44)
            bytes.u16(45)
            bytes.u16(45)
            bytes.u32(0)
            bytes.u32(0)
            bytes.u64(UInt64(members.count))
            bytes.u64(UInt64(members.count))
            bytes.u64(UInt64(directorySize))
            bytes.u64(UInt64(centralDirectoryOffset))
            bytes.u32(0x0706_4B50)
            bytes.u32(0)
            bytes.u64(UInt64(recordOffset))
            bytes.u32(1)
        }
        bytes.u32(0x0605_4B50)
        bytes.u16(0)
        bytes.u16(0)
        bytes.u16(zip64 ? 0xFFFF : UInt16(members.count))
        bytes.u16(zip64 ? 0xFFFF : UInt16(members.count))
        bytes.u32(zip64 ? 0xFFFF_FFFF : UInt32(directorySize))
        bytes.u32(zip64 ? 0xFFFF_FFFF : UInt32(centralDirectoryOffset))
        bytes.u16(0)
        return bytes.bytes
    }

    private static func localHeaderLength(_ member: Member, zip64: Bool) -> Int {
        30 + Array(member.name.utf8).count + (zip64 ? 20 : 0)
    }

    /// A whole archive in memory (small archives: items, tests).
    public static func encode(_ arrays: [(name: String, tensor: Tensor)]) -> [UInt8] {
        let layout = NPZLayout(
            members: arrays.map {
                Member(
                    name: $0.name + ".npy", npyHeader: NPY.header(for: TensorLayout(dtype: $0.tensor.dtype, shape: $0.tensor.shape)),
                    dataLength: $0.tensor.byteCount)
            })
        var bytes: [UInt8] = []
        bytes.reserveCapacity(layout.totalLength)
        var crcs: [UInt32] = []
        for (index, array) in arrays.enumerated() {
            var crc = CRC32()
            crc.update(layout.members[index].npyHeader)
            crc.update(array.tensor.bytes)
            bytes += layout.memberPrefix(index)
            bytes += array.tensor.bytes
            bytes += layout.memberSuffix(index, crc: crc.value)
            crcs.append(crc.value)
        }
        bytes += layout.trailer(crcs: crcs)
        return bytes
    }
}

/// Little-endian field writer for ZIP records.
struct ZIPBytes {
    var bytes: [UInt8] = []

    mutating func u16(_ value: UInt16) { bytes += [UInt8(value & 0xFF), UInt8(value >> 8)] }
    mutating func u32(_ value: UInt32) { for shift in stride(from: 0, to: 32, by: 8) { bytes.append(UInt8((value >> UInt32(shift)) & 0xFF)) } }
    mutating func u64(_ value: UInt64) { for shift in stride(from: 0, to: 64, by: 8) { bytes.append(UInt8((value >> UInt64(shift)) & 0xFF)) } }
    mutating func append(_ more: [UInt8]) { bytes += more }
}
