internal import HDF5

/// `medsegd demo DIR`: a small synthetic dataset in all four formats, with its config, so that a
/// new user sees real data served at once. Written through the same HDF5 library medsegd reads with.
public enum DemoDataset {
    public static let configFileName = "medsegd.yaml"

    /// What was written.
    public struct Summary: Sendable {
        public var configPath: String
        public var fileCount: Int
    }

    /// The demo's categories: OAI's, with tibial cartilage and meniscus collated from two channels each.
    static let categoriesYAML = """
            categories:
              - {id: 0,      name: femoral cartilage,  abbrev: fc,  color: [220, 20, 60]}
              - {id: [1, 2], name: tibial cartilage,   abbrev: tc,  color: [119, 11, 32]}
              - {id: 3,      name: patellar cartilage, abbrev: pc,  color: [0, 0, 142]}
              - {id: [4, 5], name: meniscus,           abbrev: men, color: [0, 0, 230]}
        """

    static let side = 64
    static let depth = 16
    static let channels = 6

    public static func write(to directory: String, port: Int = 8080) throws -> Summary {
        let root = Paths.resolve(directory, against: Paths.currentDirectory)
        var files = 0
        // 2D training slices: three subjects, one with an augmented copy (40 slices).
        let train = root + "/oai_2d/train"
        try FileSystem.createDirectory(train)
        for (subject, aug) in [(1, 0), (1, 1), (2, 0), (9, 0)] {
            for slice in 1...10 {
                try writeSlice(in: train, SliceName(subjectID: subject, timePoint: 0, aug: aug, sliceID: slice), labeled: true)
                files += 2
            }
        }
        // 2D validation slices: the last one has no mask (an unlabeled item).
        let valid = root + "/oai_2d/valid"
        try FileSystem.createDirectory(valid)
        for slice in 1...6 {
            try writeSlice(in: valid, SliceName(subjectID: 3, timePoint: 1, aug: 0, sliceID: slice), labeled: slice < 6)
            files += slice < 6 ? 2 : 1
        }
        // 3D volumes, one file per scan; the second stored gzip-chunked as h5py's defaults do.
        let volumes = root + "/oai_3d/test"
        try FileSystem.createDirectory(volumes)
        for (index, subject) in [4, 5].enumerated() {
            let file = try HDF5File.create(volumes + "/\(SliceName.scanID(subjectID: subject, timePoint: 0)).h5")
            try writeVolume(into: file, group: nil, seed: subject, chunked: index == 1)
            files += 1
        }
        // 3D volumes in one file, a group per scan.
        let singleFile = try HDF5File.create(root + "/oai_3d/test_singlefile.h5")
        for subject in [6, 7] {
            try writeVolume(into: singleFile, group: SliceName.scanID(subjectID: subject, timePoint: 0), seed: subject, chunked: false)
        }
        files += 1
        // A manifest of custom dicts over slices of its own folder.
        let manifestSlices = root + "/custom/slices"
        try FileSystem.createDirectory(manifestSlices)
        var manifest: [JSONValue] = []
        for slice in 1...4 {
            let name = SliceName(subjectID: 8, timePoint: 0, aug: 0, sliceID: slice)
            try writeSlice(in: manifestSlices, name, labeled: true)
            files += 2
            manifest.append(
                .object(
                    JSONObject([
                        ("file_name", .string("slices/\(name.stem).im")),
                        ("sem_seg_file", .string("slices/\(name.stem).seg")),
                        ("scan_id", .string(name.scanID)),
                        ("slice_id", .int(slice)),
                        ("scan_num_slices", .int(4)),
                        ("subject_id", .int(8)),
                        ("time_point", .int(0)),
                        ("site", .string(slice % 2 == 0 ? "B" : "A")),
                        ("scan_spacing", .array([.double(0.5), .double(0.5), .double(1.5)])),
                    ])))
        }
        try FileSystem.writeFile(root + "/custom/manifest.json", JSONWriter.encode(.array(manifest), pretty: true))
        files += 1

        try FileSystem.createDirectory(root + "/datasets.d")
        try FileSystem.writeFile(root + "/" + configFileName, Array(mainConfig(port: port).utf8))
        try FileSystem.writeFile(root + "/datasets.d/custom.yaml", Array(includedConfig.utf8))
        return Summary(configPath: root + "/" + configFileName, fileCount: files + 2)
    }

    private static func mainConfig(port: Int) -> String {
        """
        # medsegd demo configuration, written by `medsegd demo`. CONFIG.md lists every key.
        server:
          host: 127.0.0.1
          port: \(port)
          cache_bytes: 64MiB
        include: [datasets.d/*.yaml]

        families:
          demo_oai:
        \(categoriesYAML)
            metadata:
              spacing: [0.3125, 0.3125, 0.7]
            datasets:
              demo_2d_train: {format: slices-2d, scan_root: oai_2d/train}
              demo_2d_val:   {format: slices-2d, scan_root: oai_2d/valid}
              demo_3d_test:  {format: volumes-3d, scan_root: oai_3d/test}
              demo_3d_sf_test: {format: volumes-3d-singlefile, path: oai_3d/test_singlefile.h5}

        """
    }

    private static let includedConfig = """
        # Included by medsegd.yaml: a family whose dataset is a manifest of custom dicts.
        families:
          demo_custom:
        \(categoriesYAML)
            datasets:
              demo_manifest: {format: manifest, path: ../custom/manifest.json}

        """

    // MARK: synthetic arrays

    /// Concentric bands, one per mask channel, whose radii drift with the slice: masks that look
    /// like anatomy and an image whose intensity follows them.
    private static func phantom(seed: Int, slice: Int) -> (image: [Float], mask: [UInt8]) {
        var image = [Float](repeating: 0, count: side * side)
        var mask = [UInt8](repeating: 0, count: side * side * channels)
        let center = Double(side) / 2 + Double(seed % 3)
        let bandWidth = 3.0 + Double(slice % 4) * 0.5
        var noise = UInt64(seed * 7919 + slice * 104_729)
        for row in 0..<side {
            for column in 0..<side {
                let distance = ((Double(row) - center) * (Double(row) - center) + (Double(column) - center) * (Double(column) - center)).squareRoot()
                let band = Int((distance - 4) / bandWidth)
                noise = noise &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                let jitter = Float(noise >> 40) / Float(1 << 24) * 0.05
                let pixel = row * side + column
                if band >= 0 && band < channels {
                    mask[pixel * channels + band] = 1
                    image[pixel] = 0.15 * Float(band + 1) + jitter
                } else {
                    image[pixel] = jitter
                }
            }
        }
        return (image, mask)
    }

    private static func writeSlice(in folder: String, _ name: SliceName, labeled: Bool) throws {
        let (image, mask) = phantom(seed: name.subjectID * 10 + name.aug, slice: name.sliceID)
        let imageFile = try HDF5File.create("\(folder)/\(name.stem).im")
        try imageFile.write(ScanFileKeys.sliceData, image, shape: [side, side, 1])
        guard labeled else { return }
        let maskFile = try HDF5File.create("\(folder)/\(name.stem).seg")
        try maskFile.write(ScanFileKeys.sliceData, mask, shape: [side, side, 1, channels])
    }

    private static func writeVolume(into file: HDF5File, group: String?, seed: Int, chunked: Bool) throws {
        var volume = [Float](repeating: 0, count: side * side * depth)
        var masks = [UInt8](repeating: 0, count: side * side * depth * channels)
        for slice in 0..<depth {
            let (image, mask) = phantom(seed: seed, slice: slice + 1)
            // H x W x D: the slice index is the fastest axis but one (before channels).
            for pixel in 0..<(side * side) {
                volume[pixel * depth + slice] = image[pixel]
                for channel in 0..<channels {
                    masks[(pixel * depth + slice) * channels + channel] = mask[pixel * channels + channel]
                }
            }
        }
        let prefix = group.map { "\($0)/" } ?? ""
        let volumeLayout: WriteLayout = chunked ? .chunked([16, 16, 8], gzipLevel: 4) : .contiguous
        let maskLayout: WriteLayout = chunked ? .chunked([16, 16, 8, channels], gzipLevel: 4) : .contiguous
        try file.write(prefix + ScanFileKeys.volume, volume, shape: [side, side, depth], layout: volumeLayout)
        try file.write(prefix + ScanFileKeys.mask, masks, shape: [side, side, depth, channels], layout: maskLayout)
    }
}
