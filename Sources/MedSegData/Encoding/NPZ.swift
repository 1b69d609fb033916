import Synchronization

/// One array of an `.npz`: its `.npy` header, how many data bytes follow it, how it is stored.
public struct NPZMember: Sendable {
    public var name: String
    public var npyHeader: [UInt8]
    public var dataLength: Int
    public var compression: MemberCompression

    public init(name: String, npyHeader: [UInt8], dataLength: Int, compression: MemberCompression = .none) {
        self.name = name
        self.npyHeader = npyHeader
        self.dataLength = dataLength
        self.compression = compression
    }

    /// The member's `.npy` bytes: header and data.
    var size: Int { npyHeader.count.addingSaturating(dataLength) }

    /// The most bytes it can take in the archive (deflate grows incompressible data by < 0.1%).
    var storedBound: Int { compression == .none ? size : size.addingSaturating(size / 512 + 4096) }
}

/// NumPy's `.npz`, written front to back: a ZIP archive of `.npy` members, each stored or
/// deflated, streamed as its arrays are read.
///
/// Members carry a data descriptor (CRC-32 and sizes follow the data), so nothing is held to
/// compute them first; ZIP64 records are used when sizes or offsets may need them. An archive of
/// stored members has a length known before any byte is read (`plannedLength`: a
/// `Content-Length`); one with a deflated member is known only at its end. One writer serves one
/// response, its calls made in order (from whichever thread reads the next piece).
public final class NPZWriter: Sendable {
    public let members: [NPZMember]
    let zip64: Bool
    /// The archive's length when no member is compressed.
    public let plannedLength: Int?
    /// The archive's length were every member stored: what limits count.
    public let storedLength: Int
    private let state = Mutex(State())

    private struct State {
        /// Bytes of the archive produced so far.
        var position = 0
        var entries: [Entry] = []
        /// The member being written.
        var current: (index: Int, offset: Int, start: Int, crc: CRC32, deflater: Deflater?)?
    }

    private struct Entry {
        var crc: UInt32
        var storedSize: Int
        var offset: Int
    }

    public init(members: [NPZMember]) {
        self.members = members
        let bound = members.reduce(0) { $0.addingSaturating($1.storedBound).addingSaturating(200 + $1.name.utf8.count * 2) }
        zip64 = members.contains { $0.storedBound >= 0xFFFF_FFFF } || bound >= 0xFFFF_FFFF
        let zip64 = zip64
        let entries = members.reduce(0) {
            $0.addingSaturating(Self.localHeaderLength($1, zip64: zip64) + (zip64 ? 24 : 16)).addingSaturating($1.size)
        }
        let directory = members.reduce(0) { $0 + Self.centralHeaderLength($1, zip64: zip64) }
        storedLength = entries.addingSaturating(directory + (zip64 ? 56 + 20 : 0) + 22)
        plannedLength = members.allSatisfy { $0.compression == .none } ? storedLength : nil
    }

    /// Member `index`'s local header and the start of its data.
    public func startMember(_ index: Int) -> [UInt8] {
        let member = members[index]
        var bytes = ZIPBytes()
        bytes.u32(0x0403_4B50)
        bytes.u16(zip64 ? 45 : 20)  // version needed
        bytes.u16(0x0008)  // CRC and sizes in the data descriptor
        bytes.u16(member.compression == .deflate ? 8 : 0)
        bytes.u16(0)
        bytes.u16(0x0021)  // 1980-01-01 00:00: the same bytes for the same arrays (ETags)
        bytes.u32(0)
        bytes.u32(zip64 ? 0xFFFF_FFFF : 0)
        bytes.u32(zip64 ? 0xFFFF_FFFF : 0)
        bytes.u16(UInt16(member.name.utf8.count))
        bytes.u16(zip64 ? 20 : 0)
        bytes.append(Array(member.name.utf8))
        if zip64 {
            bytes.u16(0x0001)
            bytes.u16(16)
            bytes.u64(0)
            bytes.u64(0)
        }
        return state.withLock { state in
            let offset = state.position
            var crc = CRC32()
            crc.update(member.npyHeader)
            let deflater = member.compression == .deflate ? Deflater.raw() : nil
            let start = offset + bytes.bytes.count
            bytes.append(member.npyHeader.withUnsafeBytes { deflater?.compress($0) } ?? member.npyHeader)
            state.current = (index, offset, start, crc, deflater)
            state.position += bytes.bytes.count
            return bytes.bytes
        }
    }

    /// Whether the current member's array bytes go out as they are read (`encode` returns nil).
    public var storesCurrentMemberAsIs: Bool {
        state.withLock { $0.current?.deflater == nil }
    }

    /// Array bytes of the current member: nil when they go out as they are (a stored member),
    /// otherwise the bytes to send instead.
    public func encode(_ data: UnsafeRawBufferPointer) -> [UInt8]? {
        state.withLock { state in
            guard var current = state.current else { return nil }
            current.crc.update(data)
            state.current = current
            guard let deflater = current.deflater else {
                state.position += data.count
                return nil
            }
            let out = deflater.compress(data)
            state.position += out.count
            return out
        }
    }

    /// The end of the current member's data and its data descriptor.
    public func endMember() -> [UInt8] {
        state.withLock { state in
            guard let current = state.current else { return [] }
            state.current = nil
            var bytes = ZIPBytes()
            if let deflater = current.deflater {
                bytes.append(deflater.finish())
                Deflater.recycle(deflater)
            }
            let storedSize = state.position + bytes.bytes.count - current.start
            let size = members[current.index].size
            bytes.u32(0x0807_4B50)
            bytes.u32(current.crc.value)
            if zip64 {
                bytes.u64(UInt64(storedSize))
                bytes.u64(UInt64(size))
            } else {
                bytes.u32(UInt32(truncatingIfNeeded: storedSize))
                bytes.u32(UInt32(truncatingIfNeeded: size))
            }
            state.entries.append(Entry(crc: current.crc.value, storedSize: storedSize, offset: current.offset))
            state.position += bytes.bytes.count
            return bytes.bytes
        }
    }

    /// The central directory and end records, after every member.
    public func trailer() -> [UInt8] {
        state.withLock { state in
            var bytes = ZIPBytes()
            for (member, entry) in zip(members, state.entries) {
                let name = Array(member.name.utf8)
                bytes.u32(0x0201_4B50)
                bytes.u16(zip64 ? 45 : 20)  // made by
                bytes.u16(zip64 ? 45 : 20)  // needed
                bytes.u16(0x0008)
                bytes.u16(member.compression == .deflate ? 8 : 0)
                bytes.u16(0)
                bytes.u16(0x0021)
                bytes.u32(entry.crc)
                bytes.u32(zip64 ? 0xFFFF_FFFF : UInt32(truncatingIfNeeded: entry.storedSize))
                bytes.u32(zip64 ? 0xFFFF_FFFF : UInt32(truncatingIfNeeded: member.size))
                bytes.u16(UInt16(name.count))
                bytes.u16(zip64 ? 28 : 0)
                bytes.u16(0)  // comment
                bytes.u16(0)  // disk
                bytes.u16(0)  // internal attributes
                bytes.u32(0)  // external attributes
                bytes.u32(zip64 ? 0xFFFF_FFFF : UInt32(truncatingIfNeeded: entry.offset))
                bytes.append(name)
                if zip64 {
                    // ZIP64 extra field: original size, compressed size, offset, in that order.
                    bytes.u16(0x0001)
                    bytes.u16(24)
                    bytes.u64(UInt64(member.size))
                    bytes.u64(UInt64(entry.storedSize))
                    bytes.u64(UInt64(entry.offset))
                }
            }
            let directoryOffset = state.position
            let directorySize = bytes.bytes.count
            if zip64 {
                let recordOffset = directoryOffset + directorySize
                bytes.u32(0x0606_4B50)
                bytes.u64(44)
                bytes.u16(45)
                bytes.u16(45)
                bytes.u32(0)
                bytes.u32(0)
                bytes.u64(UInt64(members.count))
                bytes.u64(UInt64(members.count))
                bytes.u64(UInt64(directorySize))
                bytes.u64(UInt64(directoryOffset))
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
            bytes.u32(zip64 ? 0xFFFF_FFFF : UInt32(directoryOffset))
            bytes.u16(0)
            state.position += bytes.bytes.count
            return bytes.bytes
        }
    }

    private static func localHeaderLength(_ member: NPZMember, zip64: Bool) -> Int {
        30 + member.name.utf8.count + (zip64 ? 20 : 0)
    }

    private static func centralHeaderLength(_ member: NPZMember, zip64: Bool) -> Int {
        46 + member.name.utf8.count + (zip64 ? 28 : 0)
    }

    /// A whole archive in memory (small archives: items, tests).
    public static func encode(_ arrays: [(name: String, tensor: Tensor)], compression: MemberCompression = .none) -> [UInt8] {
        var bytes: [UInt8] = []
        write(arrays, compression: compression) { bytes += $0 }
        return bytes
    }

    /// Writes whole arrays as one archive, piece by piece in order, into `emit`; returns the
    /// archive's length were every member stored (a capacity for the caller's buffer).
    public static func write(
        _ arrays: [(name: String, tensor: Tensor)], compression: MemberCompression, capacity: (Int) -> Void = { _ in },
        into emit: (UnsafeRawBufferPointer) -> Void
    ) {
        let writer = NPZWriter(
            members: arrays.map {
                NPZMember(
                    name: $0.name + ".npy", npyHeader: NPY.header(for: TensorLayout(dtype: $0.tensor.dtype, shape: $0.tensor.shape)),
                    dataLength: $0.tensor.byteCount, compression: compression.method(forMember: $0.name))
            })
        capacity(writer.storedLength)
        for (index, array) in arrays.enumerated() {
            writer.startMember(index).withUnsafeBytes(emit)
            array.tensor.bytes.withUnsafeBytes { data in
                if let compressed = writer.encode(data) { compressed.withUnsafeBytes(emit) } else { emit(data) }
            }
            writer.endMember().withUnsafeBytes(emit)
        }
        writer.trailer().withUnsafeBytes(emit)
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

extension Int {
    /// `self + other`, or `Int.max` where that overflows: sizes past any limit stay past it.
    func addingSaturating(_ other: Int) -> Int {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? .max : sum
    }
}
