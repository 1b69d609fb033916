internal import HDF5

/// Where an item's image and mask live in HDF5, per MedSegPy's layouts.
enum ItemStorage: Sendable {
    /// 2D: `data` in the `.im` file, `data` in the `.seg` file.
    case slice(image: String, mask: String?)
    /// 3D: `volume` and `seg`, at the file's root or in a group (single-file form).
    case volume(image: String, mask: String?, group: String?)

    var imageFile: String {
        switch self {
        case .slice(let image, _), .volume(let image, _, _): image
        }
    }

    var maskFile: String? {
        switch self {
        case .slice(_, let mask), .volume(_, let mask, _): mask
        }
    }

    var imageKey: String {
        switch self {
        case .slice: ScanFileKeys.sliceData
        case .volume(_, _, let group): group.map { "\($0)/\(ScanFileKeys.volume)" } ?? ScanFileKeys.volume
        }
    }

    var maskKey: String {
        switch self {
        case .slice: ScanFileKeys.sliceData
        case .volume(_, _, let group): group.map { "\($0)/\(ScanFileKeys.mask)" } ?? ScanFileKeys.mask
        }
    }

    var isSlice: Bool {
        if case .slice = self { return true }
        return false
    }

    /// The storage of a dict. Manifest items say nothing of their layout, so their image file is
    /// looked into: `data` makes a 2D slice, `volume` a 3D scan.
    static func of(_ dict: DatasetDict, format: DatasetFormat, roots: DataRoots, index: Int) throws(TensorError) -> ItemStorage {
        switch format {
        case .slices2D:
            return .slice(image: dict.fileName, mask: dict.semSegFile)
        case .volumes3D:
            return .volume(image: dict.fileName, mask: dict.semSegFile, group: nil)
        case .volumes3DSingleFile:
            let file = dict.singlefilePath ?? dict.fileName
            return .volume(image: file, mask: dict.semSegFile == nil ? nil : file, group: dict.fileName)
        case .manifest:
            if let file = dict.singlefilePath {
                return .volume(image: file, mask: dict.semSegFile == nil ? nil : file, group: dict.fileName)
            }
            let file: HDF5File
            guard roots.contain(dict.fileName) else {
                throw TensorError.outsideRoots("item \(index) (\(Paths.fileName(of: dict.fileName)))", dict.fileName)
            }
            do {
                file = try HDF5Vetting.shared.open(dict.fileName)
            } catch {
                throw TensorError.unreadable(item: index, file: dict.fileName, error)
            }
            if file.objectKind(ScanFileKeys.sliceData) == .dataset { return .slice(image: dict.fileName, mask: dict.semSegFile) }
            if file.objectKind(ScanFileKeys.volume) == .dataset { return .volume(image: dict.fileName, mask: dict.semSegFile, group: nil) }
            throw TensorError(.unprocessable, "item \(index) (\(Paths.fileName(of: dict.fileName))) has neither a 'data' nor a 'volume' dataset")
        }
    }
}

extension TensorError {
    /// An HDF5 failure on a catalogued file, as a client may see it: the base name, not the path.
    static func unreadable(item: Int?, file: String, _ error: HDF5Error) -> TensorError {
        let subject = item.map { "item \($0) (\(Paths.fileName(of: file)))" } ?? Paths.fileName(of: file)
        let key = error.object.map { " '\($0)'" } ?? ""
        if error.kind == .checkUnavailable {
            return TensorError(.unavailable, "\(subject) cannot be opened now: \(error.detail)", file: file)
        }
        let detail: String
        switch error.kind {
        case .notFound: detail = "has no dataset\(key)"
        case .unsupported: detail = "cannot serve\(key): \(error.detail)"
        case .openFailed: detail = "cannot be opened: \(error.detail)"
        default: detail = "cannot be read\(key): \(error.detail)"
        }
        return TensorError(.unprocessable, "\(subject) \(detail)", file: file)
    }
}
