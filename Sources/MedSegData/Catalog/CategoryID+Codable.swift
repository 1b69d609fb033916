/// A category id in JSON as MedSegPy's `category_ids` are written everywhere else: a channel
/// number, or a list of channel numbers collated into one class.
extension CategoryID: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let channel = try? container.decode(Int.self) {
            self = .single(channel)
        } else {
            self = .collated(try container.decode([Int].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .single(let channel): try container.encode(channel)
        case .collated(let channels): try container.encode(channels)
        }
    }
}
