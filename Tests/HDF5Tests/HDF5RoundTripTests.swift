import Glibc
import HDF5
import TestSupport
import Testing

@Suite("HDF5 wrapper: write, then read back")
struct HDF5RoundTripTests {
    let folder = TemporaryDirectory()

    @Test(
        "every served dtype keeps its values, size and byte order",
        arguments: [
            DType.float32, .float64, .float16, .int8, .uint8, .int16, .uint16, .int32, .int64, .bool,
            DType(.int, size: 2, byteOrder: .big), DType(.float, size: 4, byteOrder: .big),
        ])
    func dtypeRoundTrip(dtype: DType) throws {
        let path = folder.file("\(dtype.numpyDescriptor.replacingSlashes).h5")
        let shape = [3, 4, 2]
        let count = shape.reduce(1, *) * dtype.size
        // Bool elements must be 0 or 1; other types take any byte pattern (float16 too).
        let bytes: [UInt8] = (0..<count).map {
            dtype.kind == .bool ? UInt8($0 % 2) : UInt8(($0 * 37 + 11) % 251) & (dtype.kind == .float ? 0x3F : 0xFF)
        }
        let file = try HDF5File.create(path)
        try bytes.withUnsafeBytes { try file.write("data", dtype: dtype, shape: shape, bytes: $0) }
        let reopened = try HDF5File.open(path)
        let dataset = try reopened.dataset("data")
        #expect(dataset.dtype == dtype)
        #expect(dataset.shape == shape)
        #expect(try dataset.readBytes() == bytes)
    }

    @Test("a hyperslab reads exactly the strided box, in C order")
    func hyperslab() throws {
        let path = folder.file("slab.h5")
        let shape = [6, 5, 4]
        let values = (0..<120).map(Int32.init)
        try HDF5File.create(path).write("volume", values, shape: shape)
        let dataset = try HDF5File.open(path).dataset("volume")
        let slab = Hyperslab(start: [1, 0, 3], count: [2, 3, 1], stride: [3, 2, 1])
        let bytes = try dataset.readBytes(slab)
        let read = bytes.withUnsafeBytes { Array($0.bindMemory(to: Int32.self)) }
        var expected: [Int32] = []
        for i in [1, 4] { for j in [0, 2, 4] { expected.append(Int32(i * 20 + j * 4 + 3)) } }
        #expect(read == expected)
        #expect(throws: HDF5Error.self) { try dataset.readBytes(Hyperslab(start: [5, 0, 0], count: [2, 1, 1])) }
    }

    @Test("layouts are reported, and a contiguous extent read with pread equals H5Dread")
    func layoutAndOffset() throws {
        let path = folder.file("layout.h5")
        let values = (0..<(16 * 16)).map { Float($0) * 0.5 }
        let file = try HDF5File.create(path)
        try file.write("flat", values, shape: [16, 16])
        try file.write("zipped", values, shape: [16, 16], layout: .chunked([8, 8], gzipLevel: 4))
        let reopened = try HDF5File.open(path)
        let flat = try reopened.dataset("flat")
        let zipped = try reopened.dataset("zipped")
        #expect(flat.layout == .contiguous)
        #expect(zipped.layout == .chunked(chunkShape: [8, 8], filtered: true))
        #expect(zipped.contiguousExtent == nil)
        let extent = try #require(flat.contiguousExtent)
        #expect(extent.byteCount == 16 * 16 * 4)
        let descriptor = open(path, O_RDONLY)
        defer { close(descriptor) }
        var raw = [UInt8](repeating: 0, count: extent.byteCount)
        let count = raw.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, $0.count, off_t(extent.offset)) }
        #expect(count == extent.byteCount)
        #expect(raw == (try flat.readBytes()))
        #expect(try zipped.readBytes() == (try flat.readBytes()))
    }

    @Test("groups list their children by name; object kinds are told apart")
    func groups() throws {
        let path = folder.file("groups.h5")
        let file = try HDF5File.create(path)
        for name in ["b_scan", "a_scan", "c_scan"] {
            try file.write("\(name)/volume", [UInt8](repeating: 1, count: 8), shape: [2, 2, 2])
        }
        let reopened = try HDF5File.open(path)
        #expect(try reopened.childNames() == ["a_scan", "b_scan", "c_scan"])
        #expect(reopened.objectKind("a_scan") == .group)
        #expect(reopened.objectKind("a_scan/volume") == .dataset)
        #expect(reopened.objectKind("missing/volume") == nil)
    }
}

@Suite("HDF5 wrapper: errors are typed and name the file and key")
struct HDF5ErrorTests {
    let folder = TemporaryDirectory()

    @Test func notHDF5() throws {
        let path = folder.write("plain.im", "this is not HDF5")
        let error = #expect(throws: HDF5Error.self) { try HDF5File.open(path) }
        #expect(error?.kind == .openFailed)
        #expect(error?.file == path)
        #expect(error?.detail == "not an HDF5 file")
    }

    @Test func missingFile() throws {
        let error = #expect(throws: HDF5Error.self) { try HDF5File.open(folder.path + "/absent.h5") }
        #expect(error?.kind == .openFailed)
    }

    @Test func truncatedFile() throws {
        let path = folder.file("cut.h5")
        try HDF5File.create(path).write("data", [Float](repeating: 1, count: 4096), shape: [64, 64])
        truncate(path, 1000)
        #expect(throws: HDF5Error.self) { try HDF5File.open(path).dataset("data").readBytes() }
    }

    @Test func missingKey() throws {
        let path = folder.file("nokey.h5")
        try HDF5File.create(path).write("other", [UInt8](repeating: 0, count: 4), shape: [4])
        let error = #expect(throws: HDF5Error.self) { try HDF5File.open(path).dataset("data") }
        #expect(error?.kind == .notFound)
        #expect(error?.object == "data")
        #expect(error?.description.contains(path) == true)
    }

    @Test func unsupportedType() throws {
        let path = folder.file("string.h5")
        try HDF5File.create(path).writeString("data", "hello")
        let error = #expect(throws: HDF5Error.self) { try HDF5File.open(path).dataset("data") }
        #expect(error?.kind == .unsupported)
        #expect(error?.detail.contains("string") == true)
    }

    @Test("files are opened close-on-exec: a child process never inherits them (nor HDF5's lock on them)")
    func closeOnExec() throws {
        let path = folder.file("cloexec.h5")
        let created = try HDF5File.create(path)
        try created.write("x", [UInt8](repeating: 0, count: 4), shape: [4])
        let writing = try #require(created.fileDescriptor)
        #expect(fcntl(writing, F_GETFD) & FD_CLOEXEC != 0)
        let opened = try HDF5File.open(path)
        let reading = try #require(opened.fileDescriptor)
        #expect(fcntl(reading, F_GETFD) & FD_CLOEXEC != 0)
    }
}

extension String {
    var replacingSlashes: String {
        map { "<>|".contains($0) ? "_" : String($0) }.joined()
    }
}
