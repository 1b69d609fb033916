/// Which stored mask channels make each output channel: `categories=[0,[1,2],3,[4,5]]`.
public struct CategorySelection: Hashable, Sendable, CustomStringConvertible {
    public var ids: [CategoryID]

    public init(_ ids: [CategoryID]) {
        self.ids = ids
    }

    public struct ParseError: Error, Sendable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    static let maxCategories = 1024

    /// Parses the JSON form, as MedSegPy's `collect_mask` takes it: a list whose elements are
    /// channel numbers or lists of channel numbers (a bare number selects one channel).
    public init(json text: String) throws(ParseError) {
        let value: JSONValue
        do {
            value = try JSONParser.parse(text, maxDepth: 3)
        } catch {
            throw ParseError(message: "categories must be JSON such as [0,[1,2],3]: \(error)")
        }
        try self.init(json: value)
    }

    public init(json value: JSONValue) throws(ParseError) {
        func channel(_ value: JSONValue) throws(ParseError) -> Int {
            guard let number = value.intValue, number >= 0 else {
                throw ParseError(message: "categories hold channel numbers (whole, >= 0) or lists of them; found \(value.typeName)")
            }
            return number
        }
        switch value {
        case .number:
            ids = [.single(try channel(value))]
        case .array(let elements):
            guard !elements.isEmpty else { throw ParseError(message: "categories is an empty list") }
            guard elements.count <= Self.maxCategories else { throw ParseError(message: "categories lists more than \(Self.maxCategories) classes") }
            var ids: [CategoryID] = []
            for element in elements {
                if case .array(let members) = element {
                    guard !members.isEmpty else { throw ParseError(message: "categories holds an empty list") }
                    guard members.count <= Self.maxCategories else { throw ParseError(message: "a collated class lists too many channels") }
                    var channels: [Int] = []
                    var seen = Set<Int>()
                    for member in members {
                        let number = try channel(member)
                        // A channel twice in one class only doubles its sum and the work: refused,
                        // so that a small request cannot ask for unbounded collation work.
                        guard seen.insert(number).inserted else {
                            throw ParseError(message: "categories: class \(ids.count) lists channel \(number) twice")
                        }
                        channels.append(number)
                    }
                    ids.append(channels.count == 1 ? .single(channels[0]) : .collated(channels))
                } else {
                    ids.append(.single(try channel(element)))
                }
            }
            self.ids = ids
        default:
            throw ParseError(message: "categories must be a list such as [0,[1,2],3]; found \(value.typeName)")
        }
    }

    /// The largest stored channel it reads.
    public var maxChannel: Int { ids.flatMap(\.channels).max() ?? 0 }

    public var description: String { "[" + ids.map(\.description).joined(separator: ",") + "]" }
}

/// MedSegPy's `add_background_labels`: where, if anywhere, a background channel goes.
public enum BackgroundChannel: String, Hashable, Sendable {
    case none, first, last
}
