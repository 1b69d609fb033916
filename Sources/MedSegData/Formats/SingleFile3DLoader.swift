internal import HDF5

/// `volumes-3d-singlefile`: one HDF5 file, one group per scan (`0000001_V00/volume`, `.../seg`).
/// As in MedSegPy, `file_name` and `sem_seg_file` are the group name and `singlefile_path` the file.
enum SingleFile3DLoader: FormatLoader {
    static func load(_ config: DatasetConfig) throws(DataProblem) -> LoadedItems {
        let path = config.location
        let groups: [String]
        let file: HDF5File
        do {
            file = try HDF5Vetting.shared.open(path)
            groups = try file.childNames()
        } catch {
            throw DataProblem(.error, dataset: config.name, file: path, error.detailWithoutFile)
        }
        var result = LoadedItems()
        for group in groups {
            guard file.objectKind(group) == .group else {
                result.problems.append(DataProblem(.warning, dataset: config.name, file: path, "skipped '\(group)': not a group"))
                continue
            }
            do throws(HDF5Error) {
                let shape = try Volumes3DLoader.volumeShape(in: file, group: group)
                let scan = ScanName(searching: group)
                result.dicts.append(
                    DatasetDict(
                        fileName: group,
                        semSegFile: group,
                        scanID: scan?.scanID ?? group,
                        subjectID: scan?.subjectID,
                        timePoint: scan?.timePoint,
                        imageSize: shape,
                        singlefilePath: path))
            } catch {
                result.problems.append(DataProblem(.error, dataset: config.name, file: path, "skipped group '\(group)': \(error.detailWithoutFile)"))
            }
        }
        return result
    }
}
