/// `slices-2d`: a folder of `%07d_V%02d-Aug%02d_%03d.im` images with `.seg` masks beside them,
/// registered like MedSegPy's `load_oai_2d_from_dir` but with `scan_num_slices` counted on disk.
enum Slices2DLoader: FormatLoader {
    static func load(_ config: DatasetConfig) throws(DataProblem) -> LoadedItems {
        let root = config.location
        let entries = try config.listScanRoot()
        var images: [(name: String, slice: SliceName)] = []
        var maskStems = Set<Substring>()
        var unmatched = 0
        var firstUnmatched: String?
        for entry in entries where entry.kind == .file {
            let isImage = entry.name.hasSuffix(".im")
            guard isImage || entry.name.hasSuffix(".seg") else { continue }
            let stem = entry.name.dropLast(isImage ? 3 : 4)
            guard let slice = SliceName(stem: stem) else {
                unmatched += 1
                if firstUnmatched == nil || entry.name < firstUnmatched! { firstUnmatched = entry.name }
                continue
            }
            if isImage { images.append((entry.name, slice)) } else { maskStems.insert(stem) }
        }
        images.sort { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }

        var sliceCounts: [VolumeKey: Int] = [:]
        for image in images { sliceCounts[VolumeKey(image.slice), default: 0] += 1 }

        var result = LoadedItems()
        result.dicts.reserveCapacity(images.count)
        let prefix = root == "/" ? "/" : root + "/"
        for (name, slice) in images {
            let stem = name.dropLast(3)
            result.dicts.append(DatasetDict(
                fileName: prefix + name,
                semSegFile: maskStems.contains(stem) ? prefix + stem + ".seg" : nil,
                scanID: slice.scanID,
                subjectID: slice.subjectID,
                timePoint: slice.timePoint,
                aug: slice.aug,
                sliceID: slice.sliceID,
                scanNumSlices: sliceCounts[VolumeKey(slice)]))
        }
        if unmatched > 0 {
            result.problems.append(DataProblem(
                .warning, dataset: config.name, file: root,
                "skipped \(unmatched) .im/.seg file(s) not named %07d_V%02d-Aug%02d_%03d (first: '\(firstUnmatched ?? "")')"))
        }
        return result
    }

    /// One subject/time point/augmentation volume.
    private struct VolumeKey: Hashable {
        var subjectID: Int, timePoint: Int, aug: Int
        init(_ slice: SliceName) {
            subjectID = slice.subjectID
            timePoint = slice.timePoint
            aug = slice.aug
        }
    }
}
