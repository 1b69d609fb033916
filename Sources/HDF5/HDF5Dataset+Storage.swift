internal import CHDF5

/// Where a dataset's bytes lie in its file, for readers that bypass the library (and its lock).
extension HDF5Dataset {
    /// The filter pipeline of a chunked dataset, in order (HDF5 filter ids: 1 deflate, 2 shuffle, ...).
    public var filters: [Int] { filterPipeline.map(\.id) }

    /// The filters of the pipeline this HDF5 library cannot apply (h5py's lzf, say, which only
    /// h5py's own build carries): such a dataset opens but can never be read.
    public var unavailableFilters: [String] {
        HDF5Library.prepareThread()
        return filterPipeline.filter { H5Zfilter_avail(H5Z_filter_t($0.id)) <= 0 }.map {
            $0.name.isEmpty ? "filter \($0.id)" : "\($0.name) (filter \($0.id))"
        }
    }

    private var filterPipeline: [(id: Int, name: String)] {
        HDF5Library.prepareThread()
        let plist = H5Dget_create_plist(id)
        defer { H5Pclose(plist) }
        let count = H5Pget_nfilters(plist)
        guard count > 0 else { return [] }
        var result: [(id: Int, name: String)] = []
        for index in 0..<UInt32(count) {
            var flags: UInt32 = 0
            var elements = 8
            var values = [UInt32](repeating: 0, count: 8)
            var name = [CChar](repeating: 0, count: 64)
            var config: UInt32 = 0
            let filter = H5Pget_filter2(plist, index, &flags, &elements, &values, name.count, &name, &config)
            let text = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            result.append((Int(filter), text))
        }
        return result
    }

    /// A stored chunk: where it starts in the file, how many bytes it takes, and which filters
    /// were skipped for it (bit i set: filter i of the pipeline was not applied).
    public struct ChunkLocation: Sendable, Equatable {
        public var address: UInt64
        public var size: Int
        public var filterMask: UInt32
    }

    /// The chunk whose first element is at `offset` (a multiple of the chunk shape), or nil when
    /// that chunk was never written (it reads as the fill value).
    public func chunkLocation(at offset: [Int]) throws(HDF5Error) -> ChunkLocation? {
        HDF5Library.prepareThread()
        var coordinates = offset.map { hsize_t($0) }
        var filterMask: UInt32 = 0
        var address: haddr_t = 0
        var size: hsize_t = 0
        guard H5Dget_chunk_info_by_coord(id, &coordinates, &filterMask, &address, &size) >= 0 else {
            throw HDF5Library.error(.readFailed, file: file.path, object: name, "no chunk index")
        }
        guard address != medseg_haddr_undef() else { return nil }
        return ChunkLocation(address: UInt64(address), size: Int(size), filterMask: filterMask)
    }

    /// Whether the dataset declares a fill value other than zero (then unwritten chunks are not zeros).
    public var hasNonZeroFill: Bool {
        HDF5Library.prepareThread()
        let plist = H5Dget_create_plist(id)
        defer { H5Pclose(plist) }
        var status = H5D_FILL_VALUE_UNDEFINED
        guard H5Pfill_value_defined(plist, &status) >= 0 else { return true }
        guard status == H5D_FILL_VALUE_USER_DEFINED else { return false }
        var value = [UInt8](repeating: 0, count: max(dtype.size, 8))
        guard H5Pget_fill_value(plist, typeID, &value) >= 0 else { return true }
        return value.contains { $0 != 0 }
    }
}
