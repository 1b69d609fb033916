internal import CHDF5

/// An open dataset: its shape, element type and layout, and reads of all or part of it.
public final class HDF5Dataset {
    public let file: HDF5File
    public let name: String
    public let shape: [Int]
    public let dtype: DType
    public let layout: StorageLayout
    let id: hid_t
    let typeID: hid_t

    init(file: HDF5File, name: String, id: hid_t) throws(HDF5Error) {
        self.file = file
        self.name = name
        self.id = id
        let typeID = H5Dget_type(id)
        guard typeID >= 0 else {
            H5Dclose(id)
            throw HDF5Library.error(.readFailed, file: file.path, object: name, "no type")
        }
        self.typeID = typeID
        // Everything is checked before the last property is set: a throw after that would run deinit.
        func refuse(_ detail: String) -> HDF5Error {
            H5Tclose(typeID)
            H5Dclose(id)
            return HDF5Error(.unsupported, file: file.path, object: name, detail: detail)
        }
        let dtype: DType
        switch DType.from(typeID: typeID) {
        case .success(let type): dtype = type
        case .failure(let unsupported): throw refuse("its element type \(unsupported.what) is not one medsegd serves")
        }
        let spaceID = H5Dget_space(id)
        let rank = Int(H5Sget_simple_extent_ndims(spaceID))
        var dims = [hsize_t](repeating: 0, count: max(rank, 0))
        if rank > 0 { H5Sget_simple_extent_dims(spaceID, &dims, nil) }
        H5Sclose(spaceID)
        // A file's metadata is not trusted: its shape must fit in memory arithmetic before any
        // size, offset or stride is derived from it.
        let shape = dims.compactMap { Int(exactly: $0) }
        guard rank >= 0, shape.count == dims.count, let bytes = (shape + [dtype.size]).checkedProduct, bytes <= Self.maxByteCount else {
            throw refuse("its declared shape \(dims) is larger than any array medsegd serves")
        }
        let layout = Self.readLayout(datasetID: id)
        // Bytes outside this file are never read: external raw-data files and virtual datasets
        // can point anywhere the process may read.
        if let refusal = Self.foreignStorage(datasetID: id, layout: layout) { throw refuse(refusal) }
        self.dtype = dtype
        self.shape = shape
        self.layout = layout
    }

    /// The largest dataset medsegd opens (2^48 bytes, 256 TiB): far beyond real scans, small
    /// enough that sums and products of such sizes never overflow.
    public static let maxByteCount = 1 << 48

    /// Why the dataset's elements live outside this file, or nil when they do not.
    private static func foreignStorage(datasetID: hid_t, layout: StorageLayout) -> String? {
        if layout == .virtual { return "it is a virtual dataset (its data lies in other files), which medsegd does not follow" }
        let plist = H5Dget_create_plist(datasetID)
        defer { H5Pclose(plist) }
        let external = H5Pget_external_count(plist)
        if external != 0 { return "its data is stored in external files, which medsegd does not read" }
        return nil
    }

    deinit {
        H5Tclose(typeID)
        H5Dclose(id)
    }

    /// Never overflows: the shape was checked against `maxByteCount` when the dataset was opened.
    public var elementCount: Int { shape.reduce(1, *) }
    public var byteCount: Int { elementCount * dtype.size }

    private static func readLayout(datasetID: hid_t) -> StorageLayout {
        let plist = H5Dget_create_plist(datasetID)
        defer { H5Pclose(plist) }
        switch H5Pget_layout(plist) {
        case H5D_CHUNKED:
            let rank = Int(H5Pget_chunk(plist, 0, nil))
            var dims = [hsize_t](repeating: 0, count: max(rank, 0))
            if rank > 0 { H5Pget_chunk(plist, Int32(rank), &dims) }
            return .chunked(chunkShape: dims.map { Int($0) }, filtered: H5Pget_nfilters(plist) > 0)
        case H5D_COMPACT: return .compact
        case H5D_VIRTUAL: return .virtual
        default: return .contiguous
        }
    }

    /// Where a contiguous dataset's bytes lie in its file, when they can be read with `pread`
    /// byte for byte (allocated, unfiltered, as many bytes as elements).
    public var contiguousExtent: (offset: UInt64, byteCount: Int)? {
        guard layout == .contiguous else { return nil }
        HDF5Library.prepareThread()
        let offset = H5Dget_offset(id)
        guard offset != medseg_haddr_undef() else {
            HDF5Library.takeErrorMessage()
            return nil
        }
        let stored = Int(H5Dget_storage_size(id))
        guard stored == byteCount else { return nil }
        return (UInt64(offset), stored)
    }

    /// Reads the selected elements, as stored (no type conversion), in C order into `buffer`,
    /// which must hold `selection.elementCount * dtype.size` bytes.
    public func read(_ selection: Hyperslab? = nil, into buffer: UnsafeMutableRawBufferPointer) throws(HDF5Error) {
        HDF5Library.prepareThread()
        let selection = selection ?? .whole(shape)
        guard selection.fits(in: shape) else {
            throw HDF5Error(
                .invalidSelection, file: file.path, object: name,
                detail: "selection \(selection) outside shape \(shape)")
        }
        precondition(buffer.count >= selection.elementCount * dtype.size, "read buffer too small")
        if selection.elementCount == 0 { return }
        // With fill time "never", HDF5 leaves the parts of unwritten chunks untouched: zero them,
        // or the buffer's previous contents (another response's bytes) would be sent.
        UnsafeMutableRawBufferPointer(rebasing: buffer[0..<(selection.elementCount * dtype.size)]).initializeMemory(as: UInt8.self, repeating: 0)
        let fileSpace = H5Dget_space(id)
        defer { H5Sclose(fileSpace) }
        var memorySpace = medseg_h5s_all()
        if !selection.isWhole(of: shape) {
            let start = selection.start.map { hsize_t($0) }
            let stride = selection.stride.map { hsize_t($0) }
            let count = selection.count.map { hsize_t($0) }
            guard H5Sselect_hyperslab(fileSpace, H5S_SELECT_SET, start, stride, count, nil) >= 0 else {
                throw HDF5Library.error(.invalidSelection, file: file.path, object: name)
            }
            memorySpace = H5Screate_simple(Int32(count.count), count, nil)
        }
        defer { if memorySpace != medseg_h5s_all() { H5Sclose(memorySpace) } }
        guard H5Dread(id, typeID, memorySpace, fileSpace, HDF5Library.defaultProperties, buffer.baseAddress) >= 0 else {
            throw HDF5Library.error(.readFailed, file: file.path, object: name)
        }
    }

    /// Reads the selection into a new byte array.
    public func readBytes(_ selection: Hyperslab? = nil) throws(HDF5Error) -> [UInt8] {
        let count = (selection ?? .whole(shape)).elementCount * dtype.size
        var bytes = [UInt8](repeating: 0, count: count)
        // `withUnsafeMutableBytes` only rethrows untyped errors: carry the typed one out by hand.
        var failure: HDF5Error?
        bytes.withUnsafeMutableBytes { buffer in
            do throws(HDF5Error) { try read(selection, into: buffer) } catch { failure = error }
        }
        if let failure { throw failure }
        return bytes
    }
}
