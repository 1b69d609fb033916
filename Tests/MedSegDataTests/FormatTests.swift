import HDF5
import Logging
import MedSegData
import TestSupport
import Testing

/// Problems are asserted on, not printed.
let quietLogger: Logger = {
    var logger = Logger(label: "test")
    logger.logLevel = .critical
    return logger
}()

/// Registers one dataset from a one-dataset config written into `folder`.
func register(_ line: String, in folder: TemporaryDirectory) throws -> (entry: CatalogEntry?, catalog: Catalog) {
    let path = folder.write("medsegd.yaml", Fixtures.config(datasets: [line]))
    let catalog = CatalogLoader.load(try ConfigLoader.load(path: path), logger: quietLogger)
    return (catalog.names.first.flatMap { catalog[$0] }, catalog)
}

@Suite("slices-2d: MedSegPy's load_oai_2d_from_dir, with slice counts from disk")
struct Slices2DTests {
    let folder = TemporaryDirectory()

    @Test("dicts are sorted by file name, with MedSegPy's keys and scan_num_slices counted per volume")
    func dicts() throws {
        let root = folder.folder("train")
        // Written out of order on purpose; subject 12 sorts after subject 9 only by its padded name.
        for name in [
            "0000012_V01-Aug00_002", "0000009_V00-Aug01_001", "0000012_V01-Aug00_001", "0000009_V00-Aug00_001",
            "0000009_V00-Aug00_003", "0000009_V00-Aug00_002",
        ] {
            try Fixtures.writeSlice(in: root, name, labeled: name != "0000009_V00-Aug00_003")
        }
        folder.write("train/notes.txt", "ignored silently")
        folder.write("train/scan_1.im", "skipped with a warning")
        folder.write("train/0000001_V00-Aug00_001_extra.seg", "skipped with a warning")

        let (entry, catalog) = try register("train2d: {format: slices-2d, scan_root: train}", in: folder)
        let dicts = try #require(entry?.dicts)
        #expect(
            dicts.map { Paths.fileName(of: $0.fileName) } == [
                "0000009_V00-Aug00_001.im", "0000009_V00-Aug00_002.im", "0000009_V00-Aug00_003.im",
                "0000009_V00-Aug01_001.im", "0000012_V01-Aug00_001.im", "0000012_V01-Aug00_002.im",
            ])
        let first = dicts[0]
        #expect(first.fileName == root + "/0000009_V00-Aug00_001.im")
        #expect(first.semSegFile == root + "/0000009_V00-Aug00_001.seg")
        #expect(first.scanID == "0000009_V00")
        #expect(first.subjectID == 9)
        #expect(first.timePoint == 0)
        #expect(first.aug == 0)
        #expect(first.sliceID == 1)
        #expect(dicts.map(\.scanNumSlices) == [3, 3, 3, 1, 2, 2])
        #expect(dicts[2].semSegFile == nil, "an .im without .seg is unlabeled")
        #expect(dicts[3].aug == 1)
        #expect(dicts[4].scanID == "0000012_V01")

        #expect(catalog.problems.count == 1)
        let warning = try #require(catalog.problems.first)
        #expect(warning.severity == .warning)
        #expect(warning.message.contains("skipped 2 .im/.seg file(s)"))

        // The dict as JSON: MedSegPy's key names and order, no sem_seg_file when unlabeled.
        var writer = JSONWriter()
        dicts[2].write(to: &writer)
        #expect(
            String(decoding: writer.bytes, as: UTF8.self) == """
                {"file_name":"\(root)/0000009_V00-Aug00_003.im","scan_id":"0000009_V00","subject_id":9,"time_point":0,\
                "slice_id":3,"scan_num_slices":3,"aug":0}
                """)

        // Scans group by subject and time point, volumes by augmentation, items in slice order.
        let scans = try #require(entry?.scans)
        #expect(scans.map(\.scanID) == ["0000009_V00", "0000012_V01"])
        #expect(scans[0].volumes.map(\.aug) == [0, 1])
        #expect(scans[0].volumes[0].items == [0, 1, 2])
        #expect(scans[0].volumes[0].numSlices == 3)
        #expect(entry?.numSubjects == 2)
    }

    @Test("a missing scan_root leaves the dataset unregistered with an error naming it")
    func missingRoot() throws {
        let (entry, catalog) = try register("gone: {format: slices-2d, scan_root: nowhere}", in: folder)
        #expect(entry == nil)
        #expect(catalog.problems.first?.severity == .error)
        #expect(catalog.problems.first?.file == folder.path + "/nowhere")
    }
}

@Suite("SliceName: the %07d_V%02d-Aug%02d_%03d convention")
struct SliceNameTests {
    @Test func parses() throws {
        let name = try #require(SliceName(stem: "9311328_V01-Aug04_072"))
        #expect(name == SliceName(subjectID: 9_311_328, timePoint: 1, aug: 4, sliceID: 72))
        #expect(name.scanID == "9311328_V01")
        #expect(name.stem == "9311328_V01-Aug04_072")
        #expect(SliceName(stem: "12345678_V100-Aug00_1000")?.sliceID == 1000, "wider numbers than the padding still match")
    }

    @Test(arguments: [
        "", "0000001_V00-Aug00", "0000001_V00_Aug00_001", "x0000001_V00-Aug00_001", "0000001_V00-Aug00_001x",
        "0000001_V-Aug00_001", "0000001_V00-Aug00_0 01", "1234567890123456789_V00-Aug00_001",
    ])
    func rejects(stem: String) {
        #expect(SliceName(stem: stem) == nil)
    }

    @Test func scanNames() {
        #expect(ScanName(searching: "0000004_V00.h5")?.scanID == "0000004_V00")
        #expect(ScanName(searching: "knee_9311328_V01_whitened.h5")?.subjectID == 9_311_328)
        #expect(ScanName(searching: "volume.h5") == nil)
    }
}

@Suite("volumes-3d and volumes-3d-singlefile: image_size read from each file")
struct Volumes3DTests {
    let folder = TemporaryDirectory()

    @Test("one dict per file, image_size from its volume, broken files reported and skipped")
    func directory() throws {
        let root = folder.folder("3d")
        try Fixtures.writeVolume(into: HDF5File.create(root + "/0000002_V01.h5"), shape: [8, 6, 5])
        try Fixtures.writeVolume(into: HDF5File.create(root + "/0000001_V00.h5"), shape: [4, 4, 3], layout: .chunked([2, 2, 3], gzipLevel: 1))
        try HDF5File.create(root + "/phantom.h5").write("volume", [Float](repeating: 0, count: 8), shape: [2, 2, 2])
        folder.write("3d/broken.h5", "not hdf5")
        try HDF5File.create(root + "/nokey.h5").write("image", [Float](repeating: 0, count: 8), shape: [2, 2, 2])
        folder.write("3d/.hidden", "ignored")

        let (entry, catalog) = try register("vol: {format: volumes-3d, scan_root: 3d}", in: folder)
        let dicts = try #require(entry?.dicts)
        #expect(dicts.map(\.scanID) == ["0000001_V00", "0000002_V01", "phantom"])
        #expect(dicts[0].fileName == root + "/0000001_V00.h5")
        #expect(dicts[0].semSegFile == dicts[0].fileName)
        #expect(dicts[0].imageSize == [4, 4, 3])
        #expect(dicts[1].imageSize == [8, 6, 5])
        #expect(dicts[1].subjectID == 2 && dicts[1].timePoint == 1)
        #expect(dicts[2].subjectID == nil)

        let problems = catalog.problems.map(\.description)
        #expect(problems.count == 2)
        #expect(problems.contains { $0.contains("broken.h5") && $0.contains("not an HDF5 file") })
        #expect(problems.contains { $0.contains("nokey.h5") && $0.contains("'volume'") })

        var writer = JSONWriter()
        dicts[0].write(to: &writer)
        #expect(
            String(decoding: writer.bytes, as: UTF8.self) == """
                {"file_name":"\(root)/0000001_V00.h5","sem_seg_file":"\(root)/0000001_V00.h5","scan_id":"0000001_V00",\
                "subject_id":1,"time_point":0,"image_size":[4,4,3]}
                """)
        #expect(entry?.scans[1].volumes == [ScanVolume(aug: 0, numSlices: 5, items: [1])])
    }

    @Test("one dict per group, named as MedSegPy names them")
    func singleFile() throws {
        let path = folder.file("test.h5")
        let file = try HDF5File.create(path)
        try Fixtures.writeVolume(into: file, group: "0000007_V00", shape: [4, 4, 2])
        try Fixtures.writeVolume(into: file, group: "0000006_V02", shape: [4, 4, 3])
        try file.createGroup("empty_group")
        let (entry, catalog) = try register("sf: {format: volumes-3d-singlefile, path: test.h5}", in: folder)
        let dicts = try #require(entry?.dicts)
        #expect(dicts.map(\.fileName) == ["0000006_V02", "0000007_V00"])
        #expect(dicts[0].semSegFile == "0000006_V02")
        #expect(dicts[0].singlefilePath == path)
        #expect(dicts[0].imageSize == [4, 4, 3])
        #expect(dicts[0].timePoint == 2)
        #expect(catalog.problems.count == 1)
        #expect(catalog.problems[0].message.contains("empty_group"))
        #expect(entry?.metadata.scanRoot == path, "scan_root is the configured path")
    }
}

@Suite("manifest: custom dicts as written")
struct ManifestTests {
    let folder = TemporaryDirectory()

    @Test("a JSON array keeps every key in order; paths become absolute")
    func array() throws {
        folder.write(
            "m/manifest.json",
            """
            [{"file_name": "slices/a.im", "sem_seg_file": "slices/a.seg", "scan_id": "s1", "slice_id": 1, "weight": 0.50, "tags": ["x"]},
             {"file_name": "other/../slices/b.im", "scan_id": "s1", "slice_id": 2, "scan_spacing": [1, 1, 2], "subject_id": 3}]
            """)
        let (entry, _) = try register("custom: {format: manifest, path: m/manifest.json}", in: folder)
        let dicts = try #require(entry?.dicts)
        #expect(dicts.count == 2)
        #expect(dicts[0].fileName == folder.path + "/m/slices/a.im")
        #expect(dicts[0].manifestFields?.keys == ["file_name", "sem_seg_file", "scan_id", "slice_id", "weight", "tags"])
        var writer = JSONWriter()
        dicts[0].write(to: &writer)
        #expect(
            String(decoding: writer.bytes, as: UTF8.self) == """
                {"file_name":"\(folder.path)/m/slices/a.im","sem_seg_file":"\(folder.path)/m/slices/a.seg","scan_id":"s1",\
                "slice_id":1,"weight":0.50,"tags":["x"]}
                """)
        #expect(dicts[1].subjectID == 3)
        #expect(entry?.numSubjects == 1)
        #expect(entry?.scans.first?.volumes.first?.items == [0, 1])
    }

    @Test("JSON Lines work too")
    func jsonLines() throws {
        folder.write("lines.jsonl", "{\"file_name\": \"a.im\"}\n\n{\"file_name\": \"b.im\", \"aug\": 2}\n")
        let (entry, _) = try register("lines: {format: manifest, path: lines.jsonl}", in: folder)
        #expect(entry?.dicts.map(\.augmentation) == [0, 2])
    }

    @Test(
        "paths outside the manifest's folder and roots are refused; roots widen it",
        arguments: [
            ("../outside.im", false), ("/etc/passwd", false), ("sub/../../x.im", false), ("sub/x.im", true),
        ])
    func containment(path: String, accepted: Bool) throws {
        folder.write("m/manifest.json", "[{\"file_name\": \"\(path)\"}]")
        let (entry, catalog) = try register("custom: {format: manifest, path: m/manifest.json}", in: folder)
        #expect((entry != nil) == accepted)
        if !accepted {
            #expect(catalog.problems.first?.message.contains("outside the manifest's folder") == true)
        }
    }

    @Test("a configured root admits paths under it")
    func roots() throws {
        let elsewhere = folder.folder("data")
        folder.write("m/manifest.json", "[{\"file_name\": \"\(elsewhere)/x.im\"}]")
        let path = folder.write("medsegd.yaml", Fixtures.config(datasets: ["custom: {format: manifest, path: m/manifest.json, roots: [data]}"]))
        let catalog = CatalogLoader.load(try ConfigLoader.load(path: path), logger: quietLogger)
        #expect(catalog["custom"]?.dicts.first?.fileName == elsewhere + "/x.im")
    }

    @Test(
        "malformed manifests are errors that say where",
        arguments: [
            ("[{\"file_name\": \"a.im\"}, 3]", "item 1 is a number"),
            ("[{\"scan_id\": \"x\"}]", "item 0: has no 'file_name'"),
            ("[{\"file_name\": \"a.im\", \"subject_id\": \"7\"}]", "'subject_id' must be a whole number"),
            ("{\"file_name\": \"a.im\"}\n{broken\n", "line 2: invalid JSON"),
            ("[{\"file_name\": \"a.im\"}", "invalid JSON"),
        ])
    func malformed(text: String, expected: String) throws {
        folder.write("bad.json", text)
        let (entry, catalog) = try register("bad: {format: manifest, path: bad.json}", in: folder)
        #expect(entry == nil)
        #expect(catalog.problems.first?.message.contains(expected) == true, "\(catalog.problems)")
    }
}

@Suite("MetadataCatalog entries")
struct MetadataTests {
    @Test("collated ids become lists; contiguous ids are pairs; extra keys follow")
    func json() {
        let metadata = DatasetMetadata(
            scanRoot: "/data",
            categories: [
                CategorySpec(id: .single(0), name: "fc", abbreviation: "fc", color: [1, 2, 3]),
                CategorySpec(id: .collated([1, 2]), name: "tc", abbreviation: "tc", color: [4, 5, 6]),
            ], extra: JSONObject([("spacing", .array([.number("0.3125")]))]))
        #expect(
            String(decoding: JSONWriter.encode(.object(metadata.json)), as: UTF8.self) == """
                {"scan_root":"/data","category_ids":[0,[1,2]],"categories":["fc","tc"],"category_abbreviations":["fc","tc"],\
                "category_colors":[[1,2,3],[4,5,6]],"category_id_to_contiguous_id":[[0,0],[[1,2],1]],\
                "evaluator_type":"SemSegEvaluator","spacing":[0.3125]}
                """)
    }
}
