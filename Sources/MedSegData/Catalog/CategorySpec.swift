/// A category id as MedSegPy writes it: one mask channel, or several collated into one class.
public enum CategoryID: Hashable, Sendable, CustomStringConvertible {
    case single(Int)
    /// Channels summed into one class, e.g. `(1, 2)` for tibial cartilage.
    case collated([Int])

    /// The stored mask channels this id reads.
    public var channels: [Int] {
        switch self {
        case .single(let channel): [channel]
        case .collated(let channels): channels
        }
    }

    public var json: JSONValue {
        switch self {
        case .single(let channel): .int(channel)
        case .collated(let channels): .array(channels.map { .int($0) })
        }
    }

    public var description: String {
        switch self {
        case .single(let channel): String(channel)
        case .collated(let channels): "[" + channels.map(String.init).joined(separator: ", ") + "]"
        }
    }
}

/// One class of a dataset: what MedSegPy's `OAI_CATEGORIES` entries hold.
public struct CategorySpec: Hashable, Sendable {
    public var id: CategoryID
    public var name: String
    public var abbreviation: String?
    /// RGB, each 0...255.
    public var color: [Int]?

    public init(id: CategoryID, name: String, abbreviation: String? = nil, color: [Int]? = nil) {
        self.id = id
        self.name = name
        self.abbreviation = abbreviation
        self.color = color
    }
}
