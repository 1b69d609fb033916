import CZlib
import Foundation

/// An independent reader of `.npy` and `.npz` bytes for the tests: it parses what NumPy's
/// format documents (and ZIP's central directory) without using medsegd's encoder.
public struct DecodedArray: Equatable, CustomStringConvertible {
    public var descriptor: String
    public var shape: [Int]
    public var data: [UInt8]

    public var description: String { "\(descriptor) \(shape) (\(data.count) bytes)" }

    /// Elements as `T`, assuming the array is in the machine's (little-endian) order.
    public func values<T: BitwiseCopyable>(_: T.Type) -> [T] {
        data.withUnsafeBytes { raw in
            (0..<(data.count / MemoryLayout<T>.size)).map { raw.loadUnaligned(fromByteOffset: $0 * MemoryLayout<T>.size, as: T.self) }
        }
    }
}

public enum NumpyDecoding {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
        init(_ description: String) { self.description = description }
    }

    public static func npy(_ bytes: [UInt8]) throws -> DecodedArray {
        guard bytes.count >= 10, bytes[0] == 0x93, Array(bytes[1..<6]) == Array("NUMPY".utf8) else { throw Failure("no NPY magic") }
        guard bytes[6] == 1, bytes[7] == 0 else { throw Failure("not version 1.0") }
        let headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
        guard (10 + headerLength) % 64 == 0 else { throw Failure("header not 64-byte aligned") }
        guard bytes.count >= 10 + headerLength, bytes[10 + headerLength - 1] == 0x0A else { throw Failure("header does not end in newline") }
        let header = String(decoding: bytes[10..<(10 + headerLength)], as: UTF8.self)
        guard header.contains("'fortran_order': False") else { throw Failure("fortran order") }
        guard let descrStart = header.range(of: "'descr': '")?.upperBound,
            let descrEnd = header[descrStart...].firstIndex(of: "'")
        else { throw Failure("no descr") }
        guard let shapeStart = header.range(of: "'shape': (")?.upperBound,
            let shapeEnd = header[shapeStart...].firstIndex(of: ")")
        else { throw Failure("no shape") }
        let shape = header[shapeStart..<shapeEnd].split(separator: ",").compactMap { Int($0.filter { $0 != " " }) }
        let descriptor = String(header[descrStart..<descrEnd])
        let data = Array(bytes[(10 + headerLength)...])
        let size = Int(descriptor.dropFirst(2)) ?? 1
        guard data.count == shape.reduce(1, *) * size else { throw Failure("data is \(data.count) bytes for \(descriptor) \(shape)") }
        return DecodedArray(descriptor: descriptor, shape: shape, data: data)
    }

    /// Members by name (without `.npy`), read through the central directory; CRCs are checked.
    public static func npz(_ bytes: [UInt8]) throws -> [String: DecodedArray] {
        try npzWithMethods(bytes).members
    }

    /// The members and each one's ZIP compression method (0 stored, 8 deflated).
    public static func npzWithMethods(_ bytes: [UInt8]) throws -> (members: [String: DecodedArray], methods: [String: Int]) {
        var methods: [String: Int] = [:]
        func u16(_ at: Int) -> Int { Int(bytes[at]) | Int(bytes[at + 1]) << 8 }
        func u32(_ at: Int) -> Int { u16(at) | u16(at + 2) << 16 }
        guard let end = stride(from: bytes.count - 22, through: 0, by: -1).first(where: { u32($0) == 0x0605_4B50 }) else {
            throw Failure("no end of central directory")
        }
        let count = u16(end + 10)
        var position = u32(end + 16)
        var members: [String: DecodedArray] = [:]
        for _ in 0..<count {
            guard u32(position) == 0x0201_4B50 else { throw Failure("bad central directory entry") }
            let method = u16(position + 10)
            let crc = UInt32(u32(position + 16))
            let storedSize = u32(position + 20)
            let size = u32(position + 24)
            let nameLength = u16(position + 28)
            let extraLength = u16(position + 30)
            let commentLength = u16(position + 32)
            let offset = u32(position + 42)
            let name = String(decoding: bytes[(position + 46)..<(position + 46 + nameLength)], as: UTF8.self)
            guard method == 0 || method == 8 else { throw Failure("member \(name) uses compression method \(method)") }
            guard u32(offset) == 0x0403_4B50 else { throw Failure("bad local header for \(name)") }
            let dataStart = offset + 30 + u16(offset + 26) + u16(offset + 28)
            let stored = Array(bytes[dataStart..<(dataStart + storedSize)])
            let data = method == 8 ? try inflateRaw(stored, size: size) : stored
            guard data.count == size else { throw Failure("member \(name) holds \(data.count) bytes, its entry says \(size)") }
            methods[String(name.dropLast(4))] = method
            guard crc32(data) == crc else { throw Failure("CRC mismatch in \(name)") }
            members[String(name.dropLast(4))] = try npy(data)
            position += 46 + nameLength + extraLength + commentLength
        }
        return (members, methods)
    }

    /// A raw deflate stream (ZIP method 8) inflated with zlib.
    static func inflateRaw(_ input: [UInt8], size: Int) throws -> [UInt8] {
        var stream = z_stream()
        guard inflateInit2_(&stream, -15, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else { throw Failure("inflateInit2 failed") }
        defer { inflateEnd(&stream) }
        var output = [UInt8](repeating: 0, count: size + 1)
        var input = input
        let status = input.withUnsafeMutableBufferPointer { source in
            output.withUnsafeMutableBufferPointer { target in
                stream.next_in = source.baseAddress
                stream.avail_in = uInt(source.count)
                stream.next_out = target.baseAddress
                stream.avail_out = uInt(target.count)
                return inflate(&stream, Z_FINISH)
            }
        }
        guard status == Z_STREAM_END else { throw Failure("deflated member does not inflate (zlib status \(status))") }
        return Array(output[..<(output.count - Int(stream.avail_out))])
    }

    /// Bitwise CRC-32 (ZIP's polynomial), slow and independent.
    static func crc32(_ data: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in data {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        return ~crc
    }
}
