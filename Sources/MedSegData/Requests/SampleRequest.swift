internal import HDF5

/// `POST /v1/datasets/{name}/sample`: patches drawn from the dataset's volumes, a seeded share of
/// them centred on foreground (nnU-Net's oversampling), sent as one `.npz`.
public struct SampleRequest: Sendable, Equatable {
    /// Per axis of the (stacked) volume `H x W x D`; two entries give 2D patches (one slice).
    public var patchSize: [Int]
    public var count: Int
    public var seed: UInt64
    public var foregroundFraction: Double
    /// Collated classes (positions in `categories`) foreground patches may centre on; nil: all.
    public var classes: [Int]?
    /// Scan ids to draw from; nil: every scan.
    public var scans: [String]?
    /// categories, background, dtype and mask_format, as elsewhere (region is the patch's own).
    public var options: TensorOptions
    public var compression: MemberCompression

    public static let keys = [
        "patch_size", "count", "seed", "foreground_fraction", "classes", "scans", "categories", "background", "dtype", "mask_format",
        "compression",
    ]
    /// The longest patch side, so that a patch alone cannot ask for unbounded bytes.
    public static let maxPatchSide = 4096

    public static func parse(body bytes: [UInt8], maxItems: Int) throws(TensorError) -> SampleRequest {
        let value: JSONValue
        do {
            value = try JSONParser.parse(bytes, maxDepth: 8)
        } catch {
            throw TensorError(.invalidRequest, "sample body is not valid JSON: \(error)")
        }
        guard case .object(let object) = value else {
            throw TensorError(.invalidRequest, "sample body must be a JSON object with 'patch_size' and 'count'")
        }
        if let unknown = object.keys.first(where: { !keys.contains($0) }) {
            throw TensorError(.invalidRequest, "unknown key '\(unknown.prefix(40))' in sample body (allowed: \(keys.joined(separator: ", ")))")
        }
        func given(_ key: String) -> JSONValue? {
            guard let value = object[key], value != .null else { return nil }
            return value
        }
        func integer(_ key: String, _ range: ClosedRange<Int>, _ value: JSONValue) throws(TensorError) -> Int {
            guard let number = value.intValue, range.contains(number) else {
                throw TensorError(.invalidRequest, "'\(key)' takes whole numbers in \(range.lowerBound)...\(range.upperBound)")
            }
            return number
        }
        guard case .array(let sides)? = given("patch_size"), (2...3).contains(sides.count) else {
            throw TensorError(.invalidRequest, "'patch_size' must list 2 or 3 whole numbers, e.g. [64, 64, 32]")
        }
        var patchSize: [Int] = []
        for side in sides { patchSize.append(try integer("patch_size", 1...maxPatchSide, side)) }
        guard let countValue = given("count") else { throw TensorError(.invalidRequest, "'count' is required: how many patches") }
        let count = try integer("count", 1...Int.max, countValue)
        let seed = try given("seed").map { (value) throws(TensorError) in UInt64(try integer("seed", 0...Int.max, value)) } ?? 0
        var fraction = 0.0
        if let value = given("foreground_fraction") {
            guard case .number(let text) = value, let number = Double(text), number.isFinite, (0...1).contains(number) else {
                throw TensorError(.invalidRequest, "'foreground_fraction' must be a number from 0 to 1")
            }
            fraction = number
        }
        var classes: [Int]?
        if let value = given("classes") {
            guard case .array(let list) = value, !list.isEmpty, list.count <= CategorySelection.maxCategories else {
                throw TensorError(.invalidRequest, "'classes' must list class positions (0 for the first category), e.g. [0, 2]")
            }
            var positions: [Int] = []
            for element in list { positions.append(try integer("classes", 0...(CategorySelection.maxCategories - 1), element)) }
            classes = positions
        }
        var scans: [String]?
        if let value = given("scans") {
            guard case .array(let list) = value, !list.isEmpty else { throw TensorError(.invalidRequest, "'scans' must list scan ids") }
            var ids: [String] = []
            for element in list {
                guard let id = element.stringValue else { throw TensorError(.invalidRequest, "'scans' lists scan ids, as strings") }
                ids.append(id)
            }
            scans = ids
        }
        // Each patch has its own region.
        var optionKeys = object
        optionKeys["region"] = nil
        let (options, compression) = try ArrayRequest.bodyOptions(optionKeys)
        // Limits last: a body that is wrong in any way is a 400 first.
        guard count <= maxItems else {
            throw TensorError(.tooLarge, "a sample may hold \(maxItems) patches (max_batch_items); this one asks for \(count)")
        }
        return SampleRequest(
            patchSize: patchSize, count: count, seed: seed, foregroundFraction: fraction, classes: classes, scans: scans, options: options,
            compression: compression)
    }
}
