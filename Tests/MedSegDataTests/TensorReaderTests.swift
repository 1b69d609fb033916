import HDF5
import Logging
import MedSegData
import TestSupport
import Testing

@Suite("TensorReader: arrays as MedSegPy's loaders read them")
struct TensorReaderTests {
    let folder = TemporaryDirectory()
    let oai: [CategoryID] = [.single(0), .collated([1, 2]), .single(3), .collated([4, 5])]

    private func entry(_ line: String) throws -> CatalogEntry {
        let path = folder.write("medsegd.yaml", Fixtures.config(datasets: [line]))
        return try #require(CatalogLoader.load(try ConfigLoader.load(path: path), logger: quietLogger).entries.values.first)
    }

    @Test("2D items: image as stored, mask collated with OAI's ids and squeezed, regions as hyperslabs")
    func slices() throws {
        let root = folder.folder("2d")
        try Fixtures.writeSlice(in: root, "0000001_V00-Aug00_001", height: 8, width: 6, seed: 3)
        let reader = TensorReader(entry: try entry("d: {format: slices-2d, scan_root: 2d}"))

        let image = try reader.image(item: 0, options: TensorOptions()).readAll()
        #expect(image.dtype == DType.float32)
        #expect(image.shape == [8, 6, 1])
        #expect(image.bytes == Fixtures.imageValues(count: 48, seed: 3).withUnsafeBytes { Array($0) })

        let storedMask = Fixtures.maskValues(count: 48 * 6, channels: 6, seed: 3)
        let mask = try reader.mask(item: 0, options: TensorOptions()).readAll()
        #expect(mask.shape == [8, 6, 4])
        var expected: [UInt8] = []
        for pixel in 0..<48 { expected += Expected.collate(Array(storedMask[(pixel * 6)..<(pixel * 6 + 6)]), oai) }
        #expect(mask.bytes == expected)

        // rows 2..<5, every other column, the singleton axis by index: H x W' only.
        let options = TensorOptions(region: try Region(parsing: "2:5,::2,0"), categories: CategorySelection([.single(5)]), background: .first)
        let part = try reader.mask(item: 0, options: options).readAll()
        #expect(part.shape == [3, 3, 2])
        var partExpected: [UInt8] = []
        for row in 2..<5 {
            for column in stride(from: 0, to: 6, by: 2) {
                let value = storedMask[(row * 6 + column) * 6 + 5]
                partExpected += [value == 0 ? 1 : 0, value]
            }
        }
        #expect(part.bytes == partExpected)

        let converted = try reader.image(item: 0, options: TensorOptions(region: try Region(parsing: "0,0"), dtype: .float64)).readAll()
        #expect(converted.shape == [1])
        #expect(converted.bytes.withUnsafeBytes { $0.load(as: Double.self) } == Double(Fixtures.imageValues(count: 1, seed: 3)[0]))
    }

    @Test("2D scans stack slices in slice order into H x W x D, masks into H x W x D x C'")
    func stacks() throws {
        let root = folder.folder("2d")
        for slice in 1...3 { try Fixtures.writeSlice(in: root, "0000001_V00-Aug00_00\(slice)", height: 4, width: 5, seed: slice) }
        let reader = TensorReader(entry: try entry("d: {format: slices-2d, scan_root: 2d}"))
        let volume = try reader.scanImage("0000001_V00", aug: 0, options: TensorOptions()).readAll()
        #expect(volume.shape == [4, 5, 3])
        let values = volume.bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        for h in 0..<4 {
            for w in 0..<5 {
                for d in 0..<3 {
                    #expect(values[Expected.offset([h, w, d], [4, 5, 3])] == Fixtures.imageValues(count: 20, seed: d + 1)[h * 5 + w])
                }
            }
        }
        let masks = try reader.scanMask("0000001_V00", aug: 0, options: TensorOptions(region: try Region(parsing: "1:3,:,1:"))).readAll()
        #expect(masks.shape == [2, 5, 2, 4])
        for h in 1..<3 {
            for w in 0..<5 {
                for d in 1..<3 {
                    let stored = Fixtures.maskValues(count: 20 * 6, channels: 6, seed: d + 1)
                    let pixel = h * 5 + w
                    let offset = Expected.offset([h - 1, w, d - 1, 0], [2, 5, 2, 4])
                    #expect(Array(masks.bytes[offset..<(offset + 4)]) == Expected.collate(Array(stored[(pixel * 6)..<(pixel * 6 + 6)]), oai))
                }
            }
        }
        let single = try reader.scanImage("0000001_V00", aug: 0, options: TensorOptions(region: try Region(parsing: ":,:,-1"))).readAll()
        #expect(single.shape == [4, 5])
    }

    @Test("a missing slice, an unlabeled slice or mismatched shapes make a scan unprocessable")
    func stackErrors() throws {
        let root = folder.folder("2d")
        for slice in [1, 2, 4] { try Fixtures.writeSlice(in: root, "0000001_V00-Aug00_00\(slice)", labeled: slice != 2) }
        try Fixtures.writeSlice(in: root, "0000002_V00-Aug00_001", height: 8)
        try Fixtures.writeSlice(in: root, "0000002_V00-Aug00_002", height: 9)
        let reader = TensorReader(entry: try entry("d: {format: slices-2d, scan_root: 2d}"))
        let missing = #expect(throws: TensorError.self) { try reader.scanImage("0000001_V00", aug: 0, options: TensorOptions()) }
        #expect(missing?.kind == .unprocessable)
        #expect(missing?.message.contains("slice 3 is missing") == true)
        let shapes = #expect(throws: TensorError.self) { try reader.scanImage("0000002_V00", aug: 0, options: TensorOptions()) }
        #expect(
            shapes?.message.contains("0000002_V00-Aug00_001.im (item 3) has shape [8, 6, 1] but 0000002_V00-Aug00_002.im (item 4) has [9, 6, 1]")
                == true, "\(String(describing: shapes))")
        let unknownScan = #expect(throws: TensorError.self) { try reader.scanImage("nope", aug: 0, options: TensorOptions()) }
        #expect(unknownScan?.kind == .notFound)
        let unknownAug = #expect(throws: TensorError.self) { try reader.scanImage("0000002_V00", aug: 3, options: TensorOptions()) }
        #expect(unknownAug?.message == "scan '0000002_V00' has no augmentation 3 (it has: 0)")
    }

    @Test("3D volumes, contiguous and gzip-chunked, read the same; masks are never squeezed")
    func volumes() throws {
        let root = folder.folder("3d")
        try Fixtures.writeVolume(into: HDF5File.create(root + "/0000001_V00.h5"), shape: [6, 5, 4], seed: 2)
        try Fixtures.writeVolume(
            into: HDF5File.create(root + "/0000002_V00.h5"), shape: [6, 5, 4], seed: 2, layout: .chunked([2, 2, 2], gzipLevel: 6))
        let reader = TensorReader(entry: try entry("v: {format: volumes-3d, scan_root: 3d}"))
        let flat = try reader.image(item: 0, options: TensorOptions(region: try Region(parsing: "1:4,::2,2"))).readAll()
        let zipped = try reader.image(item: 1, options: TensorOptions(region: try Region(parsing: "1:4,::2,2"))).readAll()
        #expect(flat == zipped)
        #expect(flat.shape == [3, 3])
        let all = Fixtures.imageValues(count: 120, seed: 2)
        let values = flat.bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        #expect(values[Expected.offset([2, 1], [3, 3])] == all[Expected.offset([3, 2, 2], [6, 5, 4])])
        let mask = try reader.scanMask("0000002_V00", aug: 0, options: TensorOptions(region: try Region(parsing: ":,:,0:1"))).readAll()
        #expect(mask.shape == [6, 5, 1, 4])
    }

    @Test("arrays larger than one chunk read in row bands that add up to the whole")
    func chunks() throws {
        let root = folder.folder("3d")
        try Fixtures.writeVolume(into: HDF5File.create(root + "/0000001_V00.h5"), shape: [600, 600, 4], channels: 1, seed: 1)
        let reader = TensorReader(entry: try entry("v: {format: volumes-3d, scan_root: 3d}"))
        let source = try reader.image(item: 0, options: TensorOptions())
        #expect(source.chunkCount > 1)
        let whole = try HDF5File.open(root + "/0000001_V00.h5").dataset("volume").readBytes()
        #expect(try source.readAll().bytes == whole)
    }

    @Test("stored dtypes and byte orders are kept")
    func dtypes() throws {
        let root = folder.folder("2d")
        let bigEndian = DType(.int, size: 2, byteOrder: .big)
        let bytes: [UInt8] = (0..<24).map { UInt8($0 * 7 % 256) }
        try bytes.withUnsafeBytes {
            try HDF5File.create(root + "/0000001_V00-Aug00_001.im").write("data", dtype: bigEndian, shape: [3, 4, 1], bytes: $0)
        }
        let reader = TensorReader(entry: try entry("d: {format: slices-2d, scan_root: 2d}"))
        let image = try reader.image(item: 0, options: TensorOptions()).readAll()
        #expect(image.dtype.numpyDescriptor == ">i2")
        #expect(image.bytes == bytes)
    }

    @Test("channel errors: asked for (400) versus configured (422); unlabeled masks are 404")
    func channelErrors() throws {
        let root = folder.folder("2d")
        try Fixtures.writeSlice(in: root, "0000001_V00-Aug00_001", channels: 3)
        try Fixtures.writeSlice(in: root, "0000001_V00-Aug00_002", labeled: false)
        let reader = TensorReader(entry: try entry("d: {format: slices-2d, scan_root: 2d}"))
        let asked = #expect(throws: TensorError.self) {
            try reader.mask(item: 0, options: TensorOptions(categories: CategorySelection([.single(7)])))
        }
        #expect(asked?.kind == .invalidRequest)
        #expect(asked?.message == "categories select channel 7, but the stored mask has 3 channels (0...2)")
        let configured = #expect(throws: TensorError.self) { try reader.mask(item: 0, options: TensorOptions()) }
        #expect(configured?.kind == .unprocessable)
        #expect(configured?.message.contains("category_ids select channel 3") == true)
        let unlabeled = #expect(throws: TensorError.self) { try reader.mask(item: 1, options: TensorOptions()) }
        #expect(unlabeled?.kind == .notFound)
        let outOfRange = #expect(throws: TensorError.self) { try reader.image(item: 2, options: TensorOptions()) }
        #expect(outOfRange?.message == "item 2 is out of range: dataset 'd' has 2 items (0...1)")
    }

    @Test("broken files are unprocessable and named by base name only")
    func brokenFiles() throws {
        let root = folder.folder("2d")
        folder.write("2d/0000001_V00-Aug00_001.im", "not HDF5")
        try HDF5File.create(root + "/0000001_V00-Aug00_002.im").write("image", [Float](repeating: 0, count: 4), shape: [2, 2, 1])
        try HDF5File.create(root + "/0000001_V00-Aug00_003.im").writeString("data", "text")
        let reader = TensorReader(entry: try entry("d: {format: slices-2d, scan_root: 2d}"))
        for (item, message) in [
            (0, "item 0 (0000001_V00-Aug00_001.im) cannot be opened: not an HDF5 file"),
            (1, "item 1 (0000001_V00-Aug00_002.im) has no dataset 'data'"),
            (2, "item 2 (0000001_V00-Aug00_003.im) cannot serve 'data': its element type"),
        ] {
            let error = #expect(throws: TensorError.self) { try reader.image(item: item, options: TensorOptions()) }
            #expect(error?.kind == .unprocessable)
            #expect(error?.message.hasPrefix(message) == true, "\(String(describing: error))")
            #expect(error?.message.contains(root) == false)
        }
    }
}
