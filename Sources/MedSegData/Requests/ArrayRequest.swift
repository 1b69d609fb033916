import HDF5

/// What a client asks of an array route, in one typed value: which dataset, which item, scan or
/// batch, which arrays, read how (`TensorOptions`) and sent how (`ArrayEncoding`). It is parsed
/// once, by `ArrayRequest.Parameters`, whether it came as a query string or a batch body; its
/// `canonical` text keys the response cache and derives the ETag; its `kind` labels metrics and
/// logs; `TensorReader` turns it into the files it touches and the arrays it sends.
public struct ArrayRequest: Hashable, Sendable {
    public enum Target: Hashable, Sendable {
        case item(Int)
        case scan(id: String, aug: Int)
        /// `POST .../batch`: items stacked on a new first axis.
        case batch([Int])
    }

    /// Which arrays the response holds.
    public enum Arrays: String, Hashable, Sendable {
        case image, mask
        /// `image` and `mask` in one `.npz` (`image` alone for an unlabeled item).
        case pair
    }

    public var dataset: String
    public var target: Target
    public var arrays: Arrays
    public var options: TensorOptions
    public var encoding: ArrayEncoding
    /// How `.npz` members are stored (npz only).
    public var compression: MemberCompression

    public init(
        dataset: String, target: Target, arrays: Arrays, options: TensorOptions = TensorOptions(), encoding: ArrayEncoding,
        compression: MemberCompression = .none
    ) {
        self.dataset = dataset
        self.target = target
        self.arrays = arrays
        self.options = options
        self.encoding = encoding
        self.compression = compression
    }

    /// The label of this kind of request in metrics and logs: `item-image`, `scan-mask`, `item`, `batch`.
    public var kind: String {
        switch (target, arrays) {
        case (.batch, _): "batch"
        case (.item, .pair): "item"
        case (.item, _): "item-\(arrays.rawValue)"
        case (.scan, _): "scan-\(arrays.rawValue)"
        }
    }

    /// The options masks are read with: `dtype` converts images only.
    public var maskOptions: TensorOptions {
        var options = self.options
        options.dtype = nil
        return options
    }

    /// The items the target reads (those of a scan's volume; none for an unknown scan).
    private func items(in entry: CatalogEntry) -> [Int] {
        switch target {
        case .item(let index): [index]
        case .scan(let id, let aug): entry.scan(id)?.volumes.first { $0.aug == aug }?.items ?? []
        case .batch(let indices): indices
        }
    }

    /// Everything the bytes depend on besides the files: dataset and its format, target, arrays,
    /// options with the dataset's default categories resolved, encoding. Batches (POST) are not
    /// cached, so they have none.
    public func canonical(for entry: CatalogEntry) -> String? {
        let target: String
        switch self.target {
        case .item(let index): target = "item \(index)"
        case .scan(let id, let aug): target = "scan \(id.debugDescription) aug \(aug)"
        case .batch: return nil
        }
        let options = self.options.canonical(defaultCategories: entry.metadata.categoryIDs)
        return
            "\(kind)\n\(entry.name)\n\(entry.format.rawValue)\n\(target)\n\(TensorReader(entry: entry).storageDescription(items: items(in: entry)))\n\(options)\n\(encoding.rawValue) compression=\(compression.rawValue)"
    }
}

/// How arrays are sent: API.md's "Tensor responses" table.
public enum ArrayEncoding: String, Hashable, Sendable, CaseIterable {
    case npy, raw, npz

    public var mediaType: String {
        switch self {
        case .npy: "application/x-npy"
        case .raw: "application/octet-stream"
        case .npz: "application/x-npz"
        }
    }

    public init?(mediaType: Substring) {
        guard let encoding = Self.allCases.first(where: { $0.mediaType == mediaType.lowercased() }) else { return nil }
        self = encoding
    }

    /// What a route can send: one array as npy or raw; pairs and batches as npz.
    public static func allowed(for arrays: ArrayRequest.Arrays, target: ArrayRequest.Target) -> [ArrayEncoding] {
        if case .batch = target { return [.npz] }
        return arrays == .pair ? [.npz] : [.npy, .raw]
    }
}
