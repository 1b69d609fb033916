internal import HDF5

/// `volumes-3d`: a folder of HDF5 files, one scan each, with `volume` and `seg`.
/// Like MedSegPy's `load_oai_3d_from_dir`, except that `image_size` is read from each file.
enum Volumes3DLoader: FormatLoader {
    static func load(_ config: DatasetConfig) throws(DataProblem) -> LoadedItems {
        let root = config.location
        let entries = try config.listScanRoot()
        var result = LoadedItems()
        let roots = DataRoots([root])
        for entry in entries.sortedByName() where entry.kind == .file && !entry.name.hasPrefix(".") {
            let path = (root == "/" ? "" : root) + "/" + entry.name
            guard roots.contain(path) else {
                result.problems.append(DataProblem(.error, dataset: config.name, file: path, "skipped: a link to a file outside scan_root"))
                continue
            }
            do {
                let shape = try volumeShape(in: HDF5Vetting.shared.open(path), group: nil)
                let scan = ScanName(searching: entry.name)
                result.dicts.append(
                    DatasetDict(
                        fileName: path,
                        semSegFile: path,
                        scanID: scan?.scanID ?? Self.stem(entry.name),
                        subjectID: scan?.subjectID,
                        timePoint: scan?.timePoint,
                        imageSize: shape))
            } catch {
                result.problems.append(DataProblem(.error, dataset: config.name, file: path, "skipped: \(error.detailWithoutFile)"))
            }
        }
        return result
    }

    /// The shape of `volume` in a scan file (or in one group of a single file): H x W x D.
    static func volumeShape(in file: HDF5File, group: String?) throws(HDF5Error) -> [Int] {
        let key = group.map { "\($0)/\(ScanFileKeys.volume)" } ?? ScanFileKeys.volume
        let dataset = try file.dataset(key)
        guard dataset.shape.count == 3 else {
            throw HDF5Error(.unsupported, file: file.path, object: key, detail: "expected H x W x D, found shape \(dataset.shape)")
        }
        return dataset.shape
    }

    /// A file name without its last extension: the scan id of files not named `%07d_V%02d`.
    static func stem(_ name: String) -> String {
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return name }
        return String(name[..<dot])
    }
}

extension HDF5Error {
    /// The message without the file path, for places that already name the file.
    var detailWithoutFile: String {
        let target = object.map { " '\($0)'" } ?? ""
        return "\(kind.rawValue)\(target): \(detail)"
    }
}
