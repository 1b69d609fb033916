import HDF5

/// Every rule for reading an array request's parameters, whether they come as a (decoded) query
/// string or as a batch body: names, types, ranges and what each route takes.
extension ArrayRequest {
    /// The query parameters a GET array route takes; anything else is a 400 naming it.
    public static func queryParameters(arrays: Arrays, scan: Bool) -> [String] {
        let read: [String]
        switch arrays {
        case .image: read = ["region", "dtype"]
        case .mask: read = ["region", "categories", "background", "mask_format"]
        case .pair: read = ["region", "categories", "background", "dtype", "mask_format", "compression"]
        }
        return read + ["format"] + (scan ? ["aug"] : [])
    }

    /// The keys a batch body takes.
    public static let batchKeys = ["indices", "categories", "background", "region", "dtype", "mask_format", "compression"]

    /// The options of a GET route from its decoded query parameters.
    public static func options(query: [String: String]) throws(TensorError) -> TensorOptions {
        try options(
            region: query["region"], categories: try query["categories"].map { (text) throws(TensorError) in try parseCategories(text) },
            background: query["background"], dtype: query["dtype"], maskFormat: query["mask_format"])
    }

    /// `compression=` of an npz route: none (the default) or deflate.
    public static func compression(_ text: String?) throws(TensorError) -> MemberCompression {
        guard let text else { return .none }
        guard let compression = MemberCompression(rawValue: text) else {
            throw TensorError(.invalidRequest, "compression must be none or deflate, not '\(text.prefix(40))'")
        }
        return compression
    }

    /// A batch body: `{"indices": [...], "categories": ..., "background": ..., "region": ..., "dtype": ...,
    /// "mask_format": ..., "compression": ...}`.
    public static func batch(
        body bytes: [UInt8], maxItems: Int
    ) throws(TensorError) -> (indices: [Int], options: TensorOptions, compression: MemberCompression) {
        let value: JSONValue
        do {
            value = try JSONParser.parse(bytes, maxDepth: 8)
        } catch {
            throw TensorError(.invalidRequest, "batch body is not valid JSON: \(error)")
        }
        guard case .object(let object) = value else { throw TensorError(.invalidRequest, "batch body must be a JSON object with 'indices'") }
        if let unknown = object.keys.first(where: { !batchKeys.contains($0) }) {
            throw TensorError(.invalidRequest, "unknown key '\(unknown.prefix(40))' in batch body (allowed: \(batchKeys.joined(separator: ", ")))")
        }
        guard case .array(let list)? = object["indices"], !list.isEmpty else {
            throw TensorError(.invalidRequest, "batch body needs 'indices', a non-empty list of item indices")
        }
        guard list.count <= maxItems else {
            throw TensorError(.tooLarge, "a batch may hold \(maxItems) items (max_batch_items); this one has \(list.count)")
        }
        var indices: [Int] = []
        for element in list {
            guard case .number(let text) = element else {
                throw TensorError(.invalidRequest, "'indices' holds \(element.typeName); item indices are whole numbers")
            }
            indices.append(try itemIndex(Substring(text)))
        }
        let (options, compression) = try bodyOptions(object)
        return (indices, options, compression)
    }

    /// The reading options of a JSON body (batch, sample): `categories`, `background`, `region`,
    /// `dtype`, `mask_format` and `compression`, each optional (null as absent).
    public static func bodyOptions(_ object: JSONObject) throws(TensorError) -> (TensorOptions, MemberCompression) {
        func text(_ key: String) throws(TensorError) -> String? {
            guard let value = object[key], value != .null else { return nil }
            guard let string = value.stringValue else { throw TensorError(.invalidRequest, "'\(key)' must be a string") }
            return string
        }
        var categories: CategorySelection?
        if let value = object["categories"], value != .null {
            do {
                categories = try CategorySelection(json: value)
            } catch {
                throw TensorError(.invalidRequest, error.message)
            }
        }
        let options = try options(
            region: try text("region"), categories: categories, background: try text("background"), dtype: try text("dtype"),
            maskFormat: try text("mask_format"))
        return (options, try compression(try text("compression")))
    }

    /// An item index, from a path or a batch body: a whole number; negative or too large for any
    /// dataset is out of range (404, as the contract has it); anything else is a 400.
    public static func itemIndex(_ text: Substring) throws(TensorError) -> Int {
        let digits = text.hasPrefix("-") ? text.dropFirst() : text
        guard !digits.isEmpty, digits.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
            throw TensorError(.invalidRequest, "item index must be a whole number, not '\(text.prefix(40))'")
        }
        guard let index = Int(text) else { throw TensorError(.notFound, "item \(text.prefix(40)) is out of range") }
        guard index >= 0 else { throw TensorError(.notFound, "item \(index) is out of range: indices start at 0") }
        return index
    }

    private static func options(
        region: String?, categories: CategorySelection?, background: String?, dtype: String?, maskFormat: String?
    ) throws(TensorError) -> TensorOptions {
        var options = TensorOptions()
        if let region {
            do {
                options.region = try Region(parsing: region)
            } catch {
                throw TensorError(.invalidRequest, "region: \(error.message)")
            }
        }
        options.categories = categories
        if let background {
            guard let channel = BackgroundChannel(rawValue: background) else {
                throw TensorError(.invalidRequest, "background must be none, first or last, not '\(background.prefix(40))'")
            }
            options.background = channel
        }
        if let dtype {
            guard let type = DType(numpyName: dtype) else {
                throw TensorError(
                    .invalidRequest,
                    "dtype must be one of bool, uint8, int8, uint16, int16, uint32, int32, uint64, int64, float16, float32, float64; not '\(dtype.prefix(40))'"
                )
            }
            options.dtype = type
        }
        if let maskFormat {
            guard let format = MaskFormat(rawValue: maskFormat) else {
                throw TensorError(.invalidRequest, "mask_format must be channels or labels, not '\(maskFormat.prefix(40))'")
            }
            options.maskFormat = format
        }
        return options
    }

    private static func parseCategories(_ text: String) throws(TensorError) -> CategorySelection {
        do {
            return try CategorySelection(json: text)
        } catch {
            throw TensorError(.invalidRequest, error.message)
        }
    }
}
