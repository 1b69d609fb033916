public import HDF5

/// How a client asks for an array: the query parameters (or batch body fields) of tensor routes.
public struct TensorOptions: Hashable, Sendable {
    public var region: Region
    /// `nil`: the dataset's `category_ids`.
    public var categories: CategorySelection?
    public var background: BackgroundChannel
    /// Images only: convert to this (little-endian) type.
    public var dtype: DType?
    /// Masks only: collated channels or class indices.
    public var maskFormat: MaskFormat
    /// Masks only: every stored channel as it is, whatever the categories (fingerprints).
    var storedChannels = false

    public init(
        region: Region = .all, categories: CategorySelection? = nil, background: BackgroundChannel = .none, dtype: DType? = nil,
        maskFormat: MaskFormat = .channels
    ) {
        self.region = region
        self.categories = categories
        self.background = background
        self.dtype = dtype
        self.maskFormat = maskFormat
    }

    /// A stable text form, part of cache keys and ETags: the same request always yields the same
    /// text, and default categories appear as the ids they stand for, so a reload that changes
    /// `category_ids` changes the key.
    public func canonical(defaultCategories: [CategoryID]) -> String {
        let categories = self.categories ?? CategorySelection(defaultCategories)
        return
            "region=\(region);categories=\(categories);background=\(background.rawValue);dtype=\(dtype?.numpyDescriptor ?? "stored");mask=\(maskFormat.rawValue)"
    }
}
