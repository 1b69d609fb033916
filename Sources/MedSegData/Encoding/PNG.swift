/// PNG (RFC 2083) of 8-bit RGB pixels: signature, IHDR, one IDAT of the zlib-deflated rows
/// (filter type 0 on every row: previews are small and mostly flat), IEND.
public enum PNG {
    /// `rgb`: `height x width x 3` bytes, row by row.
    public static func encode(rgb: [UInt8], width: Int, height: Int) -> [UInt8] {
        precondition(rgb.count == width * height * 3, "PNG.encode: \(rgb.count) bytes for \(width)x\(height) RGB")
        var rows: [UInt8] = []
        rows.reserveCapacity(height * (width * 3 + 1))
        for row in 0..<height {
            rows.append(0)  // filter: none
            rows += rgb[(row * width * 3)..<((row + 1) * width * 3)]
        }
        let deflater = Deflater(level: 6, zlibWrapped: true)
        let data = rows.withUnsafeBytes { deflater.compress($0) } + deflater.finish()
        var header = ZIPBytes()
        header.append(bigEndian(UInt32(width)) + bigEndian(UInt32(height)))
        header.append([8, 2, 0, 0, 0])  // 8 bits per channel, RGB, deflate, adaptive filtering, no interlace
        return [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + chunk("IHDR", header.bytes) + chunk("IDAT", data) + chunk("IEND", [])
    }

    private static func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let body = Array(type.utf8) + data
        var crc = CRC32()
        crc.update(body)
        return bigEndian(UInt32(data.count)) + body + bigEndian(crc.value)
    }

    private static func bigEndian(_ value: UInt32) -> [UInt8] {
        [UInt8(value >> 24), UInt8((value >> 16) & 0xFF), UInt8((value >> 8) & 0xFF), UInt8(value & 0xFF)]
    }
}
