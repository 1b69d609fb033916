import Glibc
import Logging
import MedSegData

/// One input (main.swift hands it over from libFuzzer). One binary holds every target;
/// `MEDSEGD_FUZZ_TARGET` picks one (scripts/fuzz sets it). A target returns normally for every
/// input: a typed error is the expected answer to bad input, while a trap, a sanitizer report, a
/// leak or a hang is a finding. Exported under libFuzzer's name too, which its runtime references.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = [UInt8](UnsafeBufferPointer(start: data, count: size))
    switch FuzzTarget.selected {
    case .region: FuzzTarget.region(bytes)
    case .categories: FuzzTarget.categories(bytes)
    case .json: FuzzTarget.json(bytes)
    case .config: FuzzTarget.config(bytes)
    case .dicts: FuzzTarget.dicts(bytes)
    case .hdf5: FuzzTarget.hdf5(bytes)
    case .sample: FuzzTarget.sample(bytes)
    case .preview: FuzzTarget.preview(bytes)
    }
    return 0
}

enum FuzzTarget: String, CaseIterable {
    case region, categories, json, config, dicts, hdf5, sample, preview

    static let selected: FuzzTarget = {
        let name = getenv("MEDSEGD_FUZZ_TARGET").map { String(cString: $0) } ?? ""
        guard let target = FuzzTarget(rawValue: name) else {
            printError("set MEDSEGD_FUZZ_TARGET to one of: \(allCases.map(\.rawValue).joined(separator: ", "))")
            exit(2)
        }
        return target
    }()

    static func check(_ condition: Bool, _ message: @autoclosure () -> String) {
        guard condition else {
            printError("invariant broken: \(message())")
            abort()
        }
    }

    /// `region=` text, resolved against shapes that include empty and one-element axes.
    static func region(_ bytes: [UInt8]) {
        guard let region = try? Region(parsing: String(decoding: bytes, as: UTF8.self)) else { return }
        for shape in [[384, 384, 1], [0, 5], [1], [7, 1, 3, 2], [], [Int(HDF5Limits.largeAxis), 2]] {
            guard let resolved = try? region.resolve(for: shape) else { continue }
            check(resolved.hyperslab.fits(in: shape), "\(region) over \(shape) gave \(resolved.hyperslab)")
            _ = TensorLayout(dtype: .float32, shape: resolved.shape).byteCount
        }
    }

    /// `categories=` JSON, its work bound at extreme sizes, then a collation of small masks
    /// (uint8 with values near 255, int8, bool) with it when its channels exist.
    static func categories(_ bytes: [UInt8]) {
        guard let selection = try? CategorySelection(json: String(decoding: bytes, as: UTF8.self)) else { return }
        for pixels in [0, 1, 1 << 24, Int.max] {
            let transform = MaskTransform(selection: selection, background: .first, format: .labels, subject: "fuzz")
            _ = try? transform.checkWork(pixels: pixels, storedChannels: 6)
        }
        let channels = 6
        guard selection.maxChannel < channels else { return }
        let values = (0..<(6 * channels)).map { UInt8(truncatingIfNeeded: $0 % 3 == 0 ? 0 : 250 + $0 % 7) }
        let shape = [3, 2, 1, channels]
        for mask in [
            Tensor(dtype: .uint8, shape: shape, bytes: values), Tensor(dtype: .int8, shape: shape, bytes: values),
            Tensor(dtype: .bool, shape: shape, bytes: values.map { $0 == 0 ? 0 : 1 }),
        ] {
            collate(mask, selection, channels: channels)
        }
    }

    private static func collate(_ mask: Tensor, _ selection: CategorySelection, channels: Int) {
        for background in [BackgroundChannel.none, .first, .last] {
            let collated = Collation.collate(mask, selection: selection, background: background, squeezeAxis: 2)
            check(collated.shape == [3, 2, selection.ids.count + (background == .none ? 0 : 1)], "collated shape \(collated.shape)")
            // Labels: every pixel written, or an overlap inside the buffer.
            var labels = [UInt8](repeating: 0xEE, count: 6 * 2)
            let overlap = mask.bytes.withUnsafeBytes { input in
                labels.withUnsafeMutableBytes { out in
                    Collation.labels(
                        input, dtype: mask.dtype, channels: channels, selection: selection, background: background, into: out,
                        labelType: selection.ids.count < 256 ? .uint8 : .uint16)
                }
            }
            if let overlap { check(overlap.pixel < 6, "overlap at pixel \(overlap.pixel) of 6") }
        }
    }

    /// Any JSON: what parses writes back and parses to the same value.
    static func json(_ bytes: [UInt8]) {
        guard let value = try? JSONParser.parse(bytes, maxDepth: 8) else { return }
        for pretty in [false, true] {
            let written = JSONWriter.encode(value, pretty: pretty)
            check((try? JSONParser.parse(written, maxDepth: 8)) == value, "round trip of \(String(decoding: written, as: UTF8.self).prefix(200))")
        }
    }

    /// A configuration file, with its include folder beside it.
    static func config(_ bytes: [UInt8]) {
        let path = Scratch.shared.folder + "/medsegd.yaml"
        Scratch.write(bytes, to: path)
        _ = try? ConfigLoader.load(path: path)
    }

    /// Filters and paging over the demo catalog, from 8-byte numbers in the input.
    static func dicts(_ bytes: [UInt8]) {
        var numbers: [Int] = stride(from: 0, to: bytes.count - bytes.count % 8, by: 8).map { start in
            bytes[start..<(start + 8)].reduce(0) { $0 << 8 | Int($1) }
        }
        while numbers.count < 6 { numbers.append(0) }
        let entry = Scratch.shared.demoEntry
        let filter = DictFilter(
            scanID: numbers[0] % 3 == 0 ? nil : entry.scans[abs(numbers[0] % entry.scans.count)].scanID,
            subjectID: numbers[1] % 2 == 0 ? nil : numbers[1] >> 1, timePoint: numbers[2] % 2 == 0 ? nil : numbers[2] >> 1,
            aug: numbers[3] % 2 == 0 ? nil : numbers[3] >> 1)
        let limit: Int? = numbers[5] % 2 == 0 ? nil : numbers[5] >> 1
        let (indices, total) = entry.select(filter, offset: numbers[4], limit: limit)
        check(indices.allSatisfy { entry.dicts.indices.contains($0) && filter.matches(entry.dicts[$0]) }, "selected a dict that does not match")
        check(indices.count <= total && indices.count <= max(limit ?? Int.max, 0), "paging returned \(indices.count) of \(total)")
    }

    /// The input as an HDF5 file under a 2D slice (`data` as image and as mask) and a 3D volume
    /// (`volume`, `seg`), read through every route's path: direct reads and the library, whole
    /// and by region, collated, converted, stacked.
    static func hdf5(_ bytes: [UInt8]) {
        let scratch = Scratch.shared
        for file in scratch.hdf5Files { Scratch.write(bytes, to: file) }
        var regionOptions = TensorOptions()
        regionOptions.region = Region([.slice(start: 1, stop: nil, step: 2), .index(-1)])
        var converted = TensorOptions()
        converted.dtype = .uint64
        for entry in scratch.hdf5Entries {
            for directReads in [true, false] {
                let reader = TensorReader(entry: entry, directReads: directReads)
                for options in [TensorOptions(), regionOptions, converted] {
                    read { try reader.image(item: 0, options: options) }
                    var maskOptions = options
                    maskOptions.dtype = nil
                    maskOptions.background = .last
                    read { try reader.mask(item: 0, options: maskOptions) }
                }
                if entry.format == .slices2D {
                    read { try reader.scanImage(entry.dicts[0].scanID ?? "", aug: 0, options: TensorOptions()) }
                    read { try reader.scanMask(entry.dicts[0].scanID ?? "", aug: 0, options: TensorOptions()) }
                }
                // The fingerprint pass and the previews read the same hostile files.
                if let scan = entry.scans.first, let volume = scan.volumes.first,
                    let pixels = try? reader.previewPixels(.scan(id: scan.scanID, aug: volume.aug), request: PreviewRequest()), pixels <= 1 << 20
                {
                    if let slice = try? reader.previewSlice(.scan(id: scan.scanID, aug: volume.aug), request: PreviewRequest(), byteLimit: 16 << 20) {
                        let picture = SliceRenderer.render(image: slice.image, mask: slice.mask, colors: slice.colors, request: PreviewRequest())
                        _ = PNG.encode(rgb: picture.rgb, width: picture.width, height: picture.height)
                    }
                    if let image = try? reader.scanImage(scan.scanID, aug: volume.aug, options: TensorOptions()), image.layout.byteCount <= 16 << 20 {
                        image.close()
                        _ = try? FingerprintComputer(reader: reader).compute(scanID: scan.scanID, aug: volume.aug)
                    }
                }
            }
        }
    }

    /// A sample body, then its plan over the demo's scans with made-up fingerprints (shapes with
    /// one-voxel and empty axes, foreground indices at both ends).
    static func sample(_ bytes: [UInt8]) {
        guard let request = try? SampleRequest.parse(body: bytes, maxItems: 64) else { return }
        let entry = Scratch.shared.demoEntry
        let shapes = [[5, 4, 3], [1, 1, 1], [64, 64, 10]]
        let records = entry.scans.enumerated().map { position, scan in
            let shape = shapes[position % shapes.count]
            let voxels = shape.reduce(1, *)
            let fingerprint = ScanFingerprint(
                scanID: scan.scanID, aug: 0, shape: shape, dtype: "<f4", voxels: voxels, intensity: nil, channelVoxels: [1, 0, 2, 0, 0, 3],
                classVoxels: [1, 2, 0, 3], foregroundSamples: [1, 0, 2, 0, 0, 1])
            return ScanRecord(
                key: ScanKey(scanID: scan.scanID, aug: 0, storage: "", files: [], categories: ""), fingerprint: fingerprint, countedVoxels: voxels,
                intensitySample: [], foreground: [[0], [], [0, UInt32(voxels - 1)], [], [], [UInt32(voxels / 2)]], maskShape: shape)
        }
        guard let plans = try? PatchPlan.draw(request, entry: entry, records: records) else { return }
        check(plans.count == request.count, "\(plans.count) patches for count \(request.count)")
        for plan in plans {
            check(zip(plan.center, plan.shape).allSatisfy { $0 >= 0 && $0 < $1 }, "centre \(plan.center) outside \(plan.shape)")
        }
    }

    /// A preview query string, then a drawing of a small slice with NaN and infinite values.
    static func preview(_ bytes: [UInt8]) {
        var query: [String: String] = [:]
        for pair in String(decoding: bytes, as: UTF8.self).split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            query[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
        }
        guard let request = try? PreviewRequest.parse(query) else { return }
        if let classes = request.classes {
            check(classes == Array(Set(classes)).sorted() && classes.count <= 1024, "classes not a bounded set: \(classes.prefix(20))")
        }
        let values: [Float] = [0, 1, .nan, .infinity, -.infinity, 3, 1e30, -2, 5, 0, 7, 1]
        let image = Tensor(dtype: .float32, shape: [3, 4], bytes: values.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) })
        let mask = Tensor(dtype: .uint8, shape: [3, 4, 2], bytes: (0..<24).map { UInt8($0 % 3 == 0 ? 1 : 0) })
        let picture = SliceRenderer.render(image: image, mask: mask, colors: [[1, 2, 3]], request: request)
        check(picture.rgb.count == picture.width * picture.height * 3, "picture of \(picture.rgb.count) bytes")
        check(max(picture.width, picture.height) <= max(request.size ?? 4, 1) || request.size == nil, "size \(picture.width)x\(picture.height)")
        _ = PNG.encode(rgb: picture.rgb, width: picture.width, height: picture.height)
    }

    /// Opens and reads a source when it is small (as max_response_bytes would have it).
    private static func read(_ open: () throws -> any TensorSource) {
        guard let source = try? open() else { return }
        defer { source.close() }
        guard source.layout.byteCount <= 16 << 20 else { return }
        if let tensor = try? source.readAll() {
            check(tensor.bytes.count == source.layout.byteCount, "read \(tensor.bytes.count) bytes of \(source.layout)")
        }
    }
}

func printError(_ message: String) {
    let line = Array((message + "\n").utf8)
    _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}

enum HDF5Limits {
    static let largeAxis: Int64 = 1 << 40
}

/// Files and catalogs the targets reuse across inputs (a folder per process).
final class Scratch: @unchecked Sendable {
    static let shared = Scratch()

    let folder: String
    let hdf5Files: [String]
    let hdf5Entries: [CatalogEntry]
    let demoEntry: CatalogEntry

    private init() {
        var template = Array("/tmp/medsegd-fuzz-XXXXXX".utf8CString)
        folder = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
        mkdir(folder + "/2d", 0o755)
        mkdir(folder + "/3d", 0o755)
        mkdir(folder + "/demo", 0o755)
        hdf5Files = [folder + "/2d/0000001_V00-Aug00_001.im", folder + "/2d/0000001_V00-Aug00_001.seg", folder + "/3d/0000001_V00.h5"]
        for file in hdf5Files { Scratch.write([], to: file) }
        let config = folder + "/hdf5.yaml"
        Scratch.write(
            Array(
                """
                families:
                  f:
                    categories: [{id: 0, name: a}, {id: [1, 2], name: b}]
                    datasets:
                      s: {format: slices-2d, scan_root: 2d}
                      m: {format: manifest, path: manifest.json}
                """.utf8), to: config)
        // A manifest item: its layout (2D `data` or 3D `volume`/`seg`) is read from the file itself.
        Scratch.write(
            Array(#"[{"file_name": "3d/0000001_V00.h5", "sem_seg_file": "3d/0000001_V00.h5", "scan_id": "0000001_V00"}]"#.utf8),
            to: folder + "/manifest.json")
        var logger = Logger(label: "fuzz")
        logger.logLevel = .critical
        // Slices and manifest items are registered by name, whatever their content.
        let catalog = CatalogLoader.load(try! ConfigLoader.load(path: config), logger: logger)
        hdf5Entries = ["s", "m"].compactMap { catalog[$0] }
        precondition(hdf5Entries.count == 2 && hdf5Entries.allSatisfy { $0.dicts.count == 1 }, "fuzz catalog: \(catalog.problems)")
        let demo = try! DemoDataset.write(to: folder + "/demo")
        demoEntry = CatalogLoader.load(try! ConfigLoader.load(path: demo.configPath), logger: logger)["demo_2d_train"]!
    }

    static func write(_ bytes: [UInt8], to path: String) {
        guard let file = fopen(path, "wb") else { return }
        _ = bytes.withUnsafeBufferPointer { fwrite($0.baseAddress, 1, $0.count, file) }
        fclose(file)
    }
}
