public import HDF5

/// A `region=` selection in Python's slice syntax, one component per axis:
/// `0:128,0:128,40:72`, `:,:,10`, `-64:`, `::2`.
public struct Region: Hashable, Sendable, CustomStringConvertible {
    public enum Component: Hashable, Sendable {
        /// An integer index: selects one position and drops the axis.
        case index(Int)
        /// `start:stop:step`, each optional.
        case slice(start: Int?, stop: Int?, step: Int?)
    }

    public var components: [Component]

    public init(_ components: [Component]) {
        self.components = components
    }

    /// The whole array.
    public static let all = Region([])

    public struct ParseError: Error, Sendable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    /// Parses Python slice syntax. Numbers are limited to 18 digits.
    public init(parsing text: String) throws(ParseError) {
        guard text.utf8.count <= 1000 else { throw ParseError(message: "region is too long") }
        let trimmed = text.filter { $0 != " " }
        guard !trimmed.isEmpty else {
            self.components = []
            return
        }
        var components: [Component] = []
        for part in trimmed.split(separator: ",", omittingEmptySubsequences: false) {
            guard !part.isEmpty else { throw ParseError(message: "region '\(text)' has an empty component") }
            let pieces = part.split(separator: ":", omittingEmptySubsequences: false)
            func number(_ piece: Substring) throws(ParseError) -> Int? {
                if piece.isEmpty { return nil }
                guard piece.utf8.count <= 19, let value = Int(piece) else {
                    throw ParseError(message: "region component '\(part)' is not start:stop:step with whole numbers")
                }
                return value
            }
            switch pieces.count {
            case 1:
                guard let index = try number(pieces[0]) else { throw ParseError(message: "region '\(text)' has an empty component") }
                components.append(.index(index))
            case 2:
                components.append(.slice(start: try number(pieces[0]), stop: try number(pieces[1]), step: nil))
            case 3:
                components.append(.slice(start: try number(pieces[0]), stop: try number(pieces[1]), step: try number(pieces[2])))
            default:
                throw ParseError(message: "region component '\(part)' has more than two ':'")
            }
        }
        self.components = components
    }

    public var description: String {
        components.map { component in
            switch component {
            case .index(let index): return String(index)
            case .slice(let start, let stop, let step):
                let base = "\(start.map(String.init) ?? ""):\(stop.map(String.init) ?? "")"
                return step.map { base + ":\($0)" } ?? base
            }
        }.joined(separator: ",")
    }

    public var isAll: Bool { components.isEmpty }

    /// Applies Python's rules to an array of `shape`: negative indices count from the end, slice
    /// bounds are clamped, missing trailing axes are `:`. Step 0, negative steps, out-of-range
    /// indices and more components than axes are errors.
    public func resolve(for shape: [Int]) throws(ParseError) -> ResolvedRegion {
        guard components.count <= shape.count else {
            throw ParseError(message: "region '\(self)' has \(components.count) components but the array has \(shape.count) axes \(shape)")
        }
        var start: [Int] = []
        var count: [Int] = []
        var stride: [Int] = []
        var kept: [Bool] = []
        for (axis, length) in shape.enumerated() {
            let component = axis < components.count ? components[axis] : .slice(start: nil, stop: nil, step: nil)
            switch component {
            case .index(let index):
                let position = index < 0 ? index + length : index
                guard position >= 0, position < length else {
                    throw ParseError(message: "region index \(index) is out of range for axis \(axis) of length \(length)")
                }
                start.append(position)
                count.append(1)
                stride.append(1)
                kept.append(false)
            case .slice(let first, let last, let step):
                let step = step ?? 1
                guard step != 0 else { throw ParseError(message: "region step cannot be 0 (axis \(axis))") }
                guard step > 0 else { throw ParseError(message: "region steps must be positive (axis \(axis) has \(step))") }
                func clamp(_ value: Int?, _ fallback: Int) -> Int {
                    guard let value else { return fallback }
                    return min(max(value < 0 ? value + length : value, 0), length)
                }
                let from = clamp(first, 0)
                let to = clamp(last, length)
                // ceil((to - from) / step) without `to - from + step`, which overflows for huge steps.
                let selected = to > from ? (to - from - 1) / step + 1 : 0
                // A step that reaches past the end selects one element: stride 1 keeps every later
                // offset computation within the array.
                start.append(selected > 0 ? from : 0)
                count.append(selected)
                stride.append(selected > 1 ? step : 1)
                kept.append(true)
            }
        }
        return ResolvedRegion(hyperslab: Hyperslab(start: start, count: count, stride: stride), keptAxes: kept)
    }
}

/// A region applied to one shape: what to read, and which axes remain in the result.
public struct ResolvedRegion: Hashable, Sendable {
    public var hyperslab: Hyperslab
    /// Per input axis: false where an integer index dropped it.
    public var keptAxes: [Bool]

    /// The shape of the result.
    public var shape: [Int] {
        zip(hyperslab.count, keptAxes).filter(\.1).map(\.0)
    }

    /// The same selection with one more axis, taken whole (the channel axis of masks).
    public func appendingWholeAxis(length: Int) -> ResolvedRegion {
        ResolvedRegion(
            hyperslab: Hyperslab(start: hyperslab.start + [0], count: hyperslab.count + [length], stride: hyperslab.stride + [1]),
            keptAxes: keptAxes + [true])
    }
}
