internal import CHDF5

/// How `createDataset` lays out the new dataset.
public enum WriteLayout: Sendable {
    case contiguous
    /// Chunks of this shape, gzip-compressed at `gzipLevel` (0 for no compression), with
    /// HDF5's byte shuffle before compression when `shuffle` is set.
    case chunked([Int], gzipLevel: Int, shuffle: Bool = false)
}

extension HDF5File {
    /// Creates a group (and any missing parents).
    public func createGroup(_ name: String) throws(HDF5Error) {
        HDF5Library.prepareThread()
        let linkProperties = H5Pcreate(medseg_h5p_link_create())
        defer { H5Pclose(linkProperties) }
        H5Pset_create_intermediate_group(linkProperties, 1)
        let groupID = H5Gcreate2(id, name, linkProperties, HDF5Library.defaultProperties, HDF5Library.defaultProperties)
        guard groupID >= 0 else { throw HDF5Library.error(.writeFailed, file: path, object: name) }
        H5Gclose(groupID)
    }

    /// Writes a whole dataset from raw bytes in `dtype`'s layout (C order).
    public func write(
        _ name: String, dtype: DType, shape: [Int], bytes: UnsafeRawBufferPointer, layout: WriteLayout = .contiguous
    ) throws(HDF5Error) {
        HDF5Library.prepareThread()
        precondition(bytes.count == shape.reduce(1, *) * dtype.size, "byte count does not match shape and dtype")
        let dims = shape.map { hsize_t($0) }
        let spaceID = H5Screate_simple(Int32(dims.count), dims, nil)
        defer { H5Sclose(spaceID) }
        let typeID = dtype.makeTypeID()
        defer { H5Tclose(typeID) }
        let createProperties = H5Pcreate(medseg_h5p_dataset_create())
        defer { H5Pclose(createProperties) }
        if case .chunked(let chunks, let level, let shuffle) = layout {
            let chunkDims = chunks.map { hsize_t($0) }
            H5Pset_chunk(createProperties, Int32(chunkDims.count), chunkDims)
            if shuffle { H5Pset_shuffle(createProperties) }
            if level > 0 { H5Pset_deflate(createProperties, UInt32(level)) }
        }
        let linkProperties = H5Pcreate(medseg_h5p_link_create())
        defer { H5Pclose(linkProperties) }
        H5Pset_create_intermediate_group(linkProperties, 1)
        let datasetID = H5Dcreate2(id, name, typeID, spaceID, linkProperties, createProperties, HDF5Library.defaultProperties)
        guard datasetID >= 0 else { throw HDF5Library.error(.writeFailed, file: path, object: name) }
        defer { H5Dclose(datasetID) }
        guard H5Dwrite(datasetID, typeID, medseg_h5s_all(), medseg_h5s_all(), HDF5Library.defaultProperties, bytes.baseAddress) >= 0 else {
            throw HDF5Library.error(.writeFailed, file: path, object: name)
        }
    }

    /// Writes a dataset of Swift numbers; the element type follows `T`.
    public func write<T: HDF5Element>(_ name: String, _ values: [T], shape: [Int], layout: WriteLayout = .contiguous) throws(HDF5Error) {
        var failure: HDF5Error?
        values.withUnsafeBytes { bytes in
            do throws(HDF5Error) { try write(name, dtype: T.dtype, shape: shape, bytes: bytes, layout: layout) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    /// Writes a fixed-length string dataset: only ever needed to make unsupported-type test files.
    public func writeString(_ name: String, _ value: String) throws(HDF5Error) {
        HDF5Library.prepareThread()
        let typeID = H5Tcopy(medseg_h5t_c_s1())
        defer { H5Tclose(typeID) }
        let utf8 = Array(value.utf8)
        H5Tset_size(typeID, max(utf8.count, 1))
        let spaceID = H5Screate(H5S_SCALAR)
        defer { H5Sclose(spaceID) }
        let datasetID = H5Dcreate2(
            id, name, typeID, spaceID, HDF5Library.defaultProperties, HDF5Library.defaultProperties, HDF5Library.defaultProperties)
        guard datasetID >= 0 else { throw HDF5Library.error(.writeFailed, file: path, object: name) }
        defer { H5Dclose(datasetID) }
        let padded = utf8.isEmpty ? [UInt8(0)] : utf8
        guard H5Dwrite(datasetID, typeID, medseg_h5s_all(), medseg_h5s_all(), HDF5Library.defaultProperties, padded) >= 0 else {
            throw HDF5Library.error(.writeFailed, file: path, object: name)
        }
    }
}

/// Swift number types that map to one `DType` (native byte order).
public protocol HDF5Element: BitwiseCopyable {
    static var dtype: DType { get }
}

extension Float: HDF5Element { public static var dtype: DType { DType(.float, size: 4, byteOrder: .native) } }
extension Double: HDF5Element { public static var dtype: DType { DType(.float, size: 8, byteOrder: .native) } }
extension UInt8: HDF5Element { public static var dtype: DType { .uint8 } }
extension Int8: HDF5Element { public static var dtype: DType { .int8 } }
extension Int16: HDF5Element { public static var dtype: DType { DType(.int, size: 2, byteOrder: .native) } }
extension UInt16: HDF5Element { public static var dtype: DType { DType(.uint, size: 2, byteOrder: .native) } }
extension Int32: HDF5Element { public static var dtype: DType { DType(.int, size: 4, byteOrder: .native) } }
extension Int64: HDF5Element { public static var dtype: DType { DType(.int, size: 8, byteOrder: .native) } }
extension Bool: HDF5Element { public static var dtype: DType { .bool } }
