internal import CHDF5
import Glibc

/// An open HDF5 file. Not shared between threads: open, read and let go in one blocking job.
public final class HDF5File {
    public let path: String
    let id: hid_t

    private init(path: String, id: hid_t) {
        self.path = path
        self.id = id
    }

    deinit {
        H5Fclose(id)
    }

    /// Opens an existing file read-only.
    public static func open(_ path: String) throws(HDF5Error) -> HDF5File {
        HDF5Library.prepareThread()
        // HDF5's own message for a missing or unreadable file is a paragraph; errno says it in words.
        guard access(path, R_OK) == 0 else {
            throw HDF5Error(.openFailed, file: path, detail: String(cString: strerror(errno)).lowercased())
        }
        // A directory or a device is no HDF5 file, and HDF5's own message for it quotes the path.
        var info = stat()
        guard stat(path, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
            throw HDF5Error(.openFailed, file: path, detail: "not a regular file")
        }
        // Rejecting a non-HDF5 file up front gives a clear message instead of a library stack.
        let isHDF5 = H5Fis_hdf5(path)
        guard isHDF5 > 0 else {
            let detail = HDF5Library.takeErrorMessage()
            if isHDF5 == 0 { throw HDF5Error(.openFailed, file: path, detail: "not an HDF5 file") }
            throw HDF5Error(.openFailed, file: path, detail: detail.isEmpty ? "unreadable" : detail)
        }
        let id = H5Fopen(path, medseg_h5f_acc_rdonly(), HDF5Library.defaultProperties)
        guard id >= 0 else { throw HDF5Library.error(.openFailed, file: path, "unreadable") }
        return HDF5File(path: path, id: id).closedOnExec()
    }

    /// The descriptor HDF5 reads this file through (the default sec2 driver), so that the caller
    /// can `fstat` what was actually opened rather than what a path names now.
    public var fileDescriptor: Int32? {
        HDF5Library.prepareThread()
        var handle: UnsafeMutableRawPointer?
        guard H5Fget_vfd_handle(id, HDF5Library.defaultProperties, &handle) >= 0, let handle else {
            HDF5Library.takeErrorMessage()
            return nil
        }
        return handle.load(as: Int32.self)
    }

    /// Marks the descriptor close-on-exec (HDF5 opens without `O_CLOEXEC`): a child process
    /// started meanwhile (the vetting child) must not inherit it, nor the file lock HDF5 takes on
    /// it, which would outlive this file's close and make later opens of it fail.
    private func closedOnExec() -> HDF5File {
        if let descriptor = fileDescriptor {
            let flags = fcntl(descriptor, F_GETFD)
            if flags >= 0 { _ = fcntl(descriptor, F_SETFD, flags | FD_CLOEXEC) }
        }
        return self
    }

    /// Creates (or truncates) a file for writing: used by `medsegd demo` and the tests.
    public static func create(_ path: String) throws(HDF5Error) -> HDF5File {
        HDF5Library.prepareThread()
        let id = H5Fcreate(path, medseg_h5f_acc_trunc(), HDF5Library.defaultProperties, HDF5Library.defaultProperties)
        guard id >= 0 else { throw HDF5Library.error(.writeFailed, file: path, "cannot create") }
        return HDF5File(path: path, id: id).closedOnExec()
    }

    public enum ObjectKind: Sendable { case group, dataset, other }

    /// What `name` is in this file, or `nil` when nothing is linked there. Only hard links are
    /// followed: a soft or external link along the path reads as nothing (see `linkProblem`).
    public func objectKind(_ name: String) -> ObjectKind? {
        HDF5Library.prepareThread()
        guard linkProblem(name) == nil else { return nil }
        var info = H5O_info_t()
        guard H5Oget_info_by_name2(id, name, &info, UInt32(H5O_INFO_BASIC), HDF5Library.defaultProperties) >= 0 else {
            HDF5Library.takeErrorMessage()
            return nil
        }
        switch info.type {
        case H5O_TYPE_GROUP: return .group
        case H5O_TYPE_DATASET: return .dataset
        default: return .other
        }
    }

    /// Why `name` cannot be reached by hard links alone, or nil when it can. H5Lexists checks
    /// only the last component, and following an external link would open another file: every
    /// component is checked before anything is traversed.
    private func linkProblem(_ name: String) -> HDF5Error? {
        var prefix = name.hasPrefix("/") ? "/" : ""
        for component in name.split(separator: "/") {
            prefix += prefix.isEmpty || prefix.hasSuffix("/") ? String(component) : "/" + component
            guard H5Lexists(id, prefix, HDF5Library.defaultProperties) > 0 else {
                HDF5Library.takeErrorMessage()
                return HDF5Error(.notFound, file: path, object: name, detail: "no dataset with this name")
            }
            var info = H5L_info_t()
            guard H5Lget_info(id, prefix, &info, HDF5Library.defaultProperties) >= 0 else {
                return HDF5Library.error(.readFailed, file: path, object: name, "unreadable link")
            }
            guard info.type == H5L_TYPE_HARD else {
                let kind =
                    info.type == H5L_TYPE_EXTERNAL
                    ? "an external link (to another file)" : info.type == H5L_TYPE_SOFT ? "a soft link" : "a user-defined link"
                return HDF5Error(.unsupported, file: path, object: name, detail: "'\(prefix)' is \(kind), which medsegd does not follow")
            }
        }
        return nil
    }

    /// The names linked in a group, sorted by name (the order h5py's `keys()` gives).
    public func childNames(of group: String = "/") throws(HDF5Error) -> [String] {
        HDF5Library.prepareThread()
        var info = H5G_info_t()
        guard H5Gget_info_by_name(id, group, &info, HDF5Library.defaultProperties) >= 0 else {
            throw HDF5Library.error(.notFound, file: path, object: group, "not a group")
        }
        var names: [String] = []
        names.reserveCapacity(Int(info.nlinks))
        for index in 0..<info.nlinks {
            let length = H5Lget_name_by_idx(
                id, group, H5_INDEX_NAME, H5_ITER_INC, index, nil, 0, HDF5Library.defaultProperties)
            guard length >= 0 else { throw HDF5Library.error(.readFailed, file: path, object: group) }
            var buffer = [CChar](repeating: 0, count: Int(length) + 1)
            H5Lget_name_by_idx(
                id, group, H5_INDEX_NAME, H5_ITER_INC, index, &buffer, buffer.count, HDF5Library.defaultProperties)
            names.append(String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        return names
    }

    /// Opens a dataset by its path in the file (`data`, `scan1/volume`).
    public func dataset(_ name: String) throws(HDF5Error) -> HDF5Dataset {
        HDF5Library.prepareThread()
        if let problem = linkProblem(name) { throw problem }
        guard objectKind(name) == .dataset else {
            throw HDF5Error(.notFound, file: path, object: name, detail: "no dataset with this name")
        }
        let datasetID = H5Dopen2(id, name, HDF5Library.defaultProperties)
        guard datasetID >= 0 else { throw HDF5Library.error(.readFailed, file: path, object: name) }
        return try HDF5Dataset(file: self, name: name, id: datasetID)
    }
}
