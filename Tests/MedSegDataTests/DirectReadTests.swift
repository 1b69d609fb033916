import Glibc
import HDF5
import MedSegData
import TestSupport
import Testing

@Suite("Direct reads (pread + zlib) give the bytes HDF5 gives")
struct DirectReadTests {
    let folder = TemporaryDirectory()

    static let layouts: [(String, WriteLayout)] = [
        ("contiguous", .contiguous),
        ("gzip", .chunked([5, 4, 3], gzipLevel: 4)),
        ("shuffle+gzip", .chunked([4, 7, 2], gzipLevel: 1, shuffle: true)),
        ("unfiltered chunks", .chunked([3, 3, 3], gzipLevel: 0)),
        ("one chunk", .chunked([13, 11, 7], gzipLevel: 9)),
    ]

    static let regions = ["", "2:9", "::3", "-1", "1:12:4,2:9:3,1", "5,3", ":,:,6", "0:13,10:11", "3:4,0:1,0:7:2", "12,10,6"]

    @Test("every layout, every region: direct bytes equal library bytes, across repeated reads")
    func equivalence() throws {
        for (name, layout) in Self.layouts {
            let path = folder.file("3d/\(name.replacingOccurrences("+", "_").replacingOccurrences(" ", "_")).h5")
            try Fixtures.writeVolume(into: HDF5File.create(path), shape: [13, 11, 7], channels: 3, seed: 4, layout: layout)
        }
        let config = folder.write("medsegd.yaml", Fixtures.config(datasets: ["v: {format: volumes-3d, scan_root: 3d}"]))
        let entry = try #require(CatalogLoader.load(try ConfigLoader.load(path: config), logger: quietLogger)["v"])
        let direct = TensorReader(entry: entry, directReads: true)
        let library = TensorReader(entry: entry, directReads: false)
        for item in entry.dicts.indices {
            for text in Self.regions {
                let options = TensorOptions(region: try Region(parsing: text), categories: CategorySelection([.collated([0, 2]), .single(1)]))
                // Twice through the direct reader: the first read maps the file, the second uses the map.
                for _ in 0..<2 {
                    #expect(
                        try direct.image(item: item, options: options).readAll() == (try library.image(item: item, options: options).readAll()),
                        "\(entry.dicts[item].fileName) region \(text)")
                    #expect(
                        try direct.mask(item: item, options: options).readAll() == (try library.mask(item: item, options: options).readAll()),
                        "\(entry.dicts[item].fileName) region \(text)")
                }
            }
        }
    }

    @Test("a file rewritten after it was mapped is read anew")
    func remapsChangedFiles() throws {
        let root = folder.folder("3d")
        try Fixtures.writeVolume(into: HDF5File.create(root + "/0000001_V00.h5"), shape: [4, 4, 4], seed: 1)
        let config = folder.write("medsegd.yaml", Fixtures.config(datasets: ["v: {format: volumes-3d, scan_root: 3d}"]))
        let entry = try #require(CatalogLoader.load(try ConfigLoader.load(path: config), logger: quietLogger)["v"])
        let reader = TensorReader(entry: entry)
        let before = try reader.image(item: 0, options: TensorOptions()).readAll()
        // Different layout and values: the old offsets would read garbage.
        try Fixtures.writeVolume(
            into: HDF5File.create(root + "/0000001_V00.h5"), shape: [4, 4, 4], seed: 2, layout: .chunked([2, 2, 2], gzipLevel: 3))
        let after = try reader.image(item: 0, options: TensorOptions()).readAll()
        #expect(after != before)
        #expect(after.bytes == Fixtures.imageValues(count: 64, seed: 2).withUnsafeBytes { Array($0) })
    }

    @Test("a truncated contiguous file is an unprocessable item, not a crash")
    func truncated() throws {
        let root = folder.folder("3d")
        let path = root + "/0000001_V00.h5"
        try Fixtures.writeVolume(into: HDF5File.create(path), shape: [32, 32, 8], seed: 1)
        let config = folder.write("medsegd.yaml", Fixtures.config(datasets: ["v: {format: volumes-3d, scan_root: 3d}"]))
        let entry = try #require(CatalogLoader.load(try ConfigLoader.load(path: config), logger: quietLogger)["v"])
        _ = try TensorReader(entry: entry).image(item: 0, options: TensorOptions()).readAll()
        let size = try #require(FileIdentity.of(path)).size
        #expect(truncate(path, off_t(size / 2)) == 0)
        let error = #expect(throws: TensorError.self) { try TensorReader(entry: entry).mask(item: 0, options: TensorOptions()).readAll() }
        #expect(error?.kind == .unprocessable)
    }
}
