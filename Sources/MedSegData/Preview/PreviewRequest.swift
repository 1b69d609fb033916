/// `GET .../preview.png`: how a slice is drawn. Parsed from the query, with every number checked.
public struct PreviewRequest: Hashable, Sendable {
    public enum Window: Hashable, Sendable {
        /// NumPy's `nanpercentile` 0.5 and 99.5 of the slice shown.
        case auto
        case range(low: Double, high: Double)
    }

    public var window = Window.auto
    /// Collated classes, as `categories=` elsewhere; nil: the dataset's.
    public var categories: CategorySelection?
    /// Class positions drawn (`classes=` empty or `none`: no class); nil: every class.
    public var classes: [Int]?
    public var opacity = 0.5
    /// Draw only each class's boundary (its pixels with a 4-neighbour outside it).
    public var outline = false
    /// Bound on the longer edge (nearest-neighbour downscaling); nil: as stored.
    public var size: Int?
    /// The slice along `axis`; nil: the middle one (`length // 2`).
    public var slice: Int?
    public var axis = 2

    public init() {}

    public static let maxSize = 4096

    /// The query parameters a preview route takes (scans also `aug`).
    public static let queryParameters = ["window", "categories", "background", "classes", "opacity", "outline", "size", "slice", "axis"]

    public static func parse(_ query: [String: String]) throws(TensorError) -> PreviewRequest {
        var request = PreviewRequest()
        func number(_ key: String) throws(TensorError) -> Double? {
            guard let text = query[key] else { return nil }
            guard text.utf8.count <= 40, let value = Double(text), value.isFinite else {
                throw TensorError(.invalidRequest, "\(key) must be a finite number, not '\(text.prefix(40))'")
            }
            return value
        }
        func integer(_ key: String, _ range: ClosedRange<Int>) throws(TensorError) -> Int? {
            guard let text = query[key] else { return nil }
            guard let value = Int(text), range.contains(value) else {
                throw TensorError(
                    .invalidRequest, "\(key) must be a whole number in \(range.lowerBound)...\(range.upperBound), not '\(text.prefix(40))'")
            }
            return value
        }
        if let window = query["window"], window != "auto" {
            let bounds = window.split(separator: ":", omittingEmptySubsequences: false)
            guard bounds.count == 2, let low = Double(bounds[0]), let high = Double(bounds[1]), low.isFinite, high.isFinite, low < high,
                window.utf8.count <= 80
            else {
                throw TensorError(.invalidRequest, "window must be auto or low:high with low < high (e.g. 0:1200), not '\(window.prefix(40))'")
            }
            request.window = .range(low: low, high: high)
        }
        if let text = query["categories"] {
            do {
                request.categories = try CategorySelection(json: text)
            } catch {
                throw TensorError(.invalidRequest, error.message)
            }
        }
        if let background = query["background"], BackgroundChannel(rawValue: background) == nil {
            throw TensorError(.invalidRequest, "background must be none, first or last, not '\(background.prefix(40))'")
        }
        if let text = query["classes"] {
            // A set: each class is drawn once however often it is listed (drawing costs a pass
            // over the slice per class), in class order, so `0,0` and `0` share a cache key.
            var classes = Set<Int>()
            // Empty (or `none`): no class drawn.
            let parts = text.isEmpty || text == "none" ? [] : text.split(separator: ",", omittingEmptySubsequences: false)
            guard parts.count <= CategorySelection.maxCategories else {
                throw TensorError(.invalidRequest, "classes lists \(parts.count) positions; at most \(CategorySelection.maxCategories)")
            }
            for part in parts {
                guard let value = Int(part), (0..<CategorySelection.maxCategories).contains(value) else {
                    throw TensorError(.invalidRequest, "classes lists class positions separated by commas (e.g. 0,2), not '\(text.prefix(40))'")
                }
                classes.insert(value)
            }
            request.classes = classes.sorted()
        }
        if let opacity = try number("opacity") {
            guard (0...1).contains(opacity) else { throw TensorError(.invalidRequest, "opacity must be from 0 to 1") }
            request.opacity = opacity
        }
        if let outline = query["outline"] {
            guard ["0", "1", "true", "false"].contains(outline) else { throw TensorError(.invalidRequest, "outline must be 0, 1, true or false") }
            request.outline = outline == "1" || outline == "true"
        }
        request.size = try integer("size", 1...maxSize)
        request.axis = try integer("axis", 0...2) ?? 2
        request.slice = try integer("slice", -(1 << 40)...(1 << 40))
        return request
    }

    /// The drawing options as text: part of the cache key. The default slice is `middle`, a
    /// token no `slice=` can give (`-1` is the last slice).
    public var canonical: String {
        let window: String
        switch self.window {
        case .auto: window = "auto"
        case .range(let low, let high): window = "\(low):\(high)"
        }
        let classes = self.classes.map { $0.map(String.init).joined(separator: ",") } ?? "all"
        return
            "preview window=\(window) classes=\(classes) opacity=\(opacity) outline=\(outline) size=\(size ?? 0) axis=\(axis) slice=\(slice.map(String.init) ?? "middle")"
    }
}
