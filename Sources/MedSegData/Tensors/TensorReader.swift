import HDF5

/// Opens the arrays of one dataset's items and scans as `TensorSource`s: the one place that maps
/// catalog entries to HDF5 datasets, regions, collation and conversion. Blocking: call it on
/// the blocking pool.
public struct TensorReader: Sendable {
    public let entry: CatalogEntry
    /// Read mapped layouts with `pread` instead of the HDF5 library (the same bytes; tests
    /// compare both ways).
    public let directReads: Bool

    /// Category ids are channel numbers up to 65535 (CONFIG.md): a mask with more channels could
    /// only be read whole for nothing.
    static let maxChannels = 65536

    public init(entry: CatalogEntry, directReads: Bool = true) {
        self.entry = entry
        self.directReads = directReads
    }

    // MARK: items

    /// The item's dict, or `notFound` for an index outside the list.
    public func dict(_ index: Int) throws(TensorError) -> DatasetDict {
        guard index >= 0, index < entry.dicts.count else {
            let range = entry.dicts.isEmpty ? "none" : "0...\(entry.dicts.count - 1)"
            throw TensorError(.notFound, "item \(index) is out of range: dataset '\(entry.name)' has \(entry.dicts.count) items (\(range))")
        }
        return entry.dicts[index]
    }

    public func isLabeled(_ index: Int) throws(TensorError) -> Bool {
        try dict(index).semSegFile != nil
    }

    /// Files whose identity makes up an item's ETag.
    public func files(ofItem index: Int) throws(TensorError) -> [String] {
        let dict = try dict(index)
        return [dict.singlefilePath ?? dict.fileName] + (dict.semSegFile.map { [dict.singlefilePath ?? $0] } ?? [])
    }

    public func image(item index: Int, options: TensorOptions) throws(TensorError) -> any TensorSource {
        let storage = try ItemStorage.of(dict(index), format: entry.format, roots: entry.roots, index: index)
        let dataset = try open(storage.imageFile, storage.imageKey, item: index)
        let region = try resolve(options.region, for: dataset.shape)
        let source = HyperslabSource(dataset: dataset, region: region, transform: .none)
        return converted(source, options.dtype)
    }

    public func mask(item index: Int, options: TensorOptions) throws(TensorError) -> any TensorSource {
        let dict = try dict(index)
        let storage = try ItemStorage.of(dict, format: entry.format, roots: entry.roots, index: index)
        guard let maskFile = storage.maskFile else {
            throw TensorError(.notFound, "item \(index) (\(Paths.fileName(of: dict.fileName))) is unlabeled: it has no mask")
        }
        guard options.dtype == nil else { throw TensorError(.invalidRequest, "dtype applies to images only, not masks") }
        let dataset = try open(maskFile, storage.maskKey, item: index)
        guard dataset.shape.count >= 2, let channels = dataset.shape.last, channels <= Self.maxChannels else {
            throw TensorError(
                .unprocessable,
                "\(describe(index, maskFile)) is not a mask medsegd serves (shape \(dataset.shape); expected ... x C, C at most \(Self.maxChannels))",
                file: maskFile)
        }
        let spatial = Array(dataset.shape.dropLast())
        let region = try resolve(options.region, for: spatial)
        let selection: CategorySelection
        do {
            selection = try self.selection(options, channels: channels, what: describe(index, maskFile))
        } catch {
            throw TensorError(error.kind, error.message, file: maskFile)
        }
        // MedSegPy squeezes the stored singleton axis of 2D slice masks (H x W x 1 x C).
        var squeezeAxis: Int?
        if storage.isSlice, spatial.count >= 3, region.keptAxes[2] {
            squeezeAxis = region.keptAxes[..<2].filter { $0 }.count
        }
        let transform = MaskTransform(
            selection: selection, background: options.background, format: options.maskFormat, subject: describe(index, maskFile),
            positionRank: storage.isSlice ? 2 : nil)
        try transform.checkWork(pixels: region.hyperslab.elementCount, storedChannels: channels)
        return HyperslabSource(
            dataset: dataset, region: region.appendingWholeAxis(length: channels), transform: .mask(transform, squeezeAxis: squeezeAxis))
    }

    // MARK: scans

    public func volume(scan scanID: String, aug: Int) throws(TensorError) -> ScanVolume {
        guard let scan = entry.scan(scanID) else {
            let shown = scanID.count > 100 ? String(scanID.prefix(100)) + "..." : scanID
            throw TensorError(.notFound, "scan '\(shown)' is not in dataset '\(entry.name)'")
        }
        guard let volume = scan.volumes.first(where: { $0.aug == aug }) else {
            throw TensorError(
                .notFound, "scan '\(scanID)' has no augmentation \(aug) (it has: \(scan.volumes.map { String($0.aug) }.joined(separator: ", ")))")
        }
        return volume
    }

    /// Files whose identity makes up a scan's ETag.
    public func files(ofScan scanID: String, aug: Int) throws(TensorError) -> [String] {
        var files: [String] = []
        for index in try volume(scan: scanID, aug: aug).items { files += try self.files(ofItem: index) }
        return files
    }

    public func scanImage(_ scanID: String, aug: Int, options: TensorOptions) throws(TensorError) -> any TensorSource {
        let volume = try volume(scan: scanID, aug: aug)
        if let single = try singleVolumeItem(volume) {
            return try image(item: single, options: options)
        }
        let datasets = try openSlices(volume, scanID: scanID, masks: false)
        let shape = datasets[0].shape
        let region = try resolve(options.region, for: [shape[0], shape[1], datasets.count])
        return converted(StackSource(slices: datasets, region: region, mask: nil), options.dtype)
    }

    public func scanMask(_ scanID: String, aug: Int, options: TensorOptions) throws(TensorError) -> any TensorSource {
        let volume = try volume(scan: scanID, aug: aug)
        if let single = try singleVolumeItem(volume) {
            return try mask(item: single, options: options)
        }
        guard options.dtype == nil else { throw TensorError(.invalidRequest, "dtype applies to images only, not masks") }
        let datasets = try openSlices(volume, scanID: scanID, masks: true)
        let shape = datasets[0].shape
        let selection = try selection(options, channels: shape[3], what: "each mask of scan '\(scanID)'")
        let region = try resolve(options.region, for: [shape[0], shape[1], datasets.count])
        let transform = MaskTransform(
            selection: selection, background: options.background, format: options.maskFormat, subject: "the masks of scan '\(scanID)' (aug \(aug))")
        try transform.checkWork(pixels: region.hyperslab.elementCount, storedChannels: shape[3])
        return StackSource(slices: datasets, region: region, mask: transform)
    }

    /// The item of a 3D scan (one file or group holding the whole volume), or nil for 2D slices.
    private func singleVolumeItem(_ volume: ScanVolume) throws(TensorError) -> Int? {
        guard volume.items.count == 1 else { return nil }
        let index = volume.items[0]
        let storage = try ItemStorage.of(dict(index), format: entry.format, roots: entry.roots, index: index)
        return storage.isSlice ? nil : index
    }

    /// Opens every slice of a 2D volume in slice order, checking that none is missing and that
    /// all have one shape (`H x W x 1`, masks `H x W x 1 x C`).
    private func openSlices(_ volume: ScanVolume, scanID: String, masks: Bool) throws(TensorError) -> [any ArrayStore] {
        let sliceIDs = volume.items.compactMap { entry.dicts[$0].sliceID }
        if sliceIDs.count == volume.items.count, sliceIDs != Array(1...max(1, sliceIDs.count)) {
            let present = Set(sliceIDs)
            let missing = (1...).first { !present.contains($0) }!
            throw TensorError(
                .unprocessable,
                "scan '\(scanID)' (aug \(volume.aug)) cannot be stacked: slice \(missing) is missing (slices found: \(sliceIDs.count))")
        }
        var datasets: [any ArrayStore] = []
        var firstShape: (shape: [Int], dtype: DType, name: String, index: Int)?
        for index in volume.items {
            let storage = try ItemStorage.of(entry.dicts[index], format: entry.format, roots: entry.roots, index: index)
            guard storage.isSlice else {
                throw TensorError(.unprocessable, "scan '\(scanID)' mixes 2D slices and 3D volumes (item \(index))")
            }
            let file: String
            if masks {
                guard let maskFile = storage.maskFile else {
                    throw TensorError(
                        .unprocessable,
                        "slice \(entry.dicts[index].sliceID ?? index) of scan '\(scanID)' (item \(index)) is unlabeled: the mask volume cannot be stacked"
                    )
                }
                file = maskFile
            } else {
                file = storage.imageFile
            }
            let dataset = try open(file, masks ? storage.maskKey : storage.imageKey, item: index)
            let name = Paths.fileName(of: file)
            let expectedRank = masks ? 4 : 3
            guard dataset.shape.count == expectedRank, dataset.shape[2] == 1, !masks || dataset.shape[3] <= Self.maxChannels else {
                throw TensorError(
                    .unprocessable, "\(describe(index, file)) has shape \(dataset.shape); stacking needs H x W x 1\(masks ? " x C" : "")")
            }
            if let first = firstShape, first.shape != dataset.shape {
                throw TensorError(
                    .unprocessable,
                    "scan '\(scanID)' cannot be stacked: \(first.name) (item \(first.index)) has shape \(first.shape) but \(name) (item \(index)) has \(dataset.shape)",
                    file: file)
            }
            // One dtype and byte order for the whole volume: the stack copies raw elements.
            if let first = firstShape, first.dtype != dataset.dtype {
                throw TensorError(
                    .unprocessable,
                    "scan '\(scanID)' cannot be stacked: \(first.name) (item \(first.index)) stores \(first.dtype) but \(name) (item \(index)) stores \(dataset.dtype); its slices must share one dtype and byte order",
                    file: file)
            }
            if firstShape == nil { firstShape = (dataset.shape, dataset.dtype, name, index) }
            datasets.append(dataset)
        }
        guard !datasets.isEmpty else { throw TensorError(.notFound, "scan '\(scanID)' has no slices") }
        return datasets
    }

    // MARK: shared steps

    /// Opens a dataset for reading. A dataset read before, whose file has not changed since, is
    /// read with `pread` without opening HDF5; a new one is opened with HDF5 and mapped for
    /// next time when its layout allows. Either way no file stays open (see `ArrayStore`).
    private func open(_ file: String, _ key: String, item: Int) throws(TensorError) -> any ArrayStore {
        let description = describe(item, file)
        let roots = entry.roots
        guard roots.contain(file) else { throw TensorError.outsideRoots(description, file) }
        if directReads, let identity = FileIdentity.of(file), let map = StorageMapCache.shared.lookup(file: file, dataset: key, identity: identity),
            let array = try? DirectArray(map, roots: roots, describe: description)
        {
            return array
        }
        let hdf5File: HDF5File
        let dataset: HDF5Dataset
        do {
            hdf5File = try HDF5Vetting.shared.open(file)
        } catch {
            throw TensorError.unreadable(item: item, file: file, error)
        }
        // The file actually opened, not the one the path named a moment ago: inside the roots, and its version.
        guard let descriptor = hdf5File.fileDescriptor, roots.contain(descriptor: descriptor) else {
            throw TensorError.outsideRoots(description, file)
        }
        guard let identity = FileIdentity.of(descriptor: descriptor) else {
            throw TensorError(.unprocessable, "\(description) cannot be examined (fstat failed)", file: file)
        }
        do {
            dataset = try hdf5File.dataset(key)
        } catch {
            throw TensorError.unreadable(item: item, file: file, error)
        }
        let missing = dataset.unavailableFilters
        guard missing.isEmpty else {
            throw TensorError(
                .unprocessable,
                "\(description) stores '\(key)' compressed with \(missing.joined(separator: ", ")), which this server's HDF5 library cannot decode",
                file: file)
        }
        if case .chunked(let chunkShape, _) = dataset.layout {
            let chunkBytes = (chunkShape + [dataset.dtype.size]).checkedProduct
            guard let chunkBytes, chunkBytes <= StorageMap.maxChunkBytes else {
                throw TensorError(
                    .unprocessable,
                    "\(description) stores '\(key)' in chunks of \(chunkShape) elements, over the \(StorageMap.maxChunkBytes >> 20) MiB per chunk that medsegd reads",
                    file: file)
            }
        }
        if directReads, let map = StorageMap.learn(dataset, file: file, identity: identity) {
            StorageMapCache.shared.store(map, dataset: key)
            return try DirectArray(map, roots: roots, describe: description)
        }
        return LibraryArray(dataset, file: file, key: key, identity: identity, roots: roots, describe: description)
    }

    private func resolve(_ region: Region, for shape: [Int]) throws(TensorError) -> ResolvedRegion {
        do {
            return try region.resolve(for: shape)
        } catch {
            throw TensorError(.invalidRequest, error.message)
        }
    }

    private func selection(_ options: TensorOptions, channels: Int, what: String) throws(TensorError) -> CategorySelection {
        if options.storedChannels { return CategorySelection((0..<channels).map { .single($0) }) }
        if let requested = options.categories {
            if let bad = requested.ids.flatMap(\.channels).first(where: { $0 >= channels }) {
                throw TensorError(
                    .invalidRequest, "categories select channel \(bad), but the stored mask has \(channels) channels (0...\(channels - 1))")
            }
            return requested
        }
        let defaults = CategorySelection(entry.metadata.categoryIDs)
        if let bad = defaults.ids.flatMap(\.channels).first(where: { $0 >= channels }) {
            throw TensorError(
                .unprocessable, "the dataset's category_ids select channel \(bad), but \(what) holds \(channels) channels (0...\(channels - 1))")
        }
        return defaults
    }

    private func converted(_ source: any TensorSource, _ dtype: DType?) -> any TensorSource {
        guard let dtype, dtype.withByteOrder(.little) != source.layout.dtype else { return source }
        return ConvertedSource(source, to: dtype)
    }

    private func describe(_ index: Int, _ file: String) -> String {
        "item \(index) (\(Paths.fileName(of: file)))"
    }
}
