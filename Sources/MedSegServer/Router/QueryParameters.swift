import Hummingbird

/// A request's query string decoded the way browsers, `urllib.parse.urlencode` and `requests`
/// encode it (application/x-www-form-urlencoded: `+` is a space, then percent-decoding), and
/// checked against the parameters its route knows: a misspelt or repeated parameter is a 400
/// that names it, never silently ignored.
struct QueryParameters: Sendable {
    private var values: [String: String] = [:]

    /// Parses `query`; a parameter outside `known`, given twice or badly encoded is a 400.
    init(_ query: String?, known: [String]) throws(APIError) {
        guard let query, !query.isEmpty else { return }
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = PercentEncoding.decode(parts[0], plusIsSpace: true) else {
                throw APIError.badRequest("the query string holds a parameter name that is not valid percent-encoded UTF-8")
            }
            guard known.contains(name) else {
                let knows = known.isEmpty ? "no query parameters" : known.joined(separator: ", ")
                var error = APIError.badRequest("unknown query parameter '\(name.prefix(40))'; this route knows \(knows)")
                // A route that refuses `pretty` answers in compact JSON, as it always does.
                error.honoursPretty = known.contains("pretty")
                throw error
            }
            guard let value = PercentEncoding.decode(parts.count > 1 ? parts[1] : "", plusIsSpace: true) else {
                throw APIError.badRequest("query parameter '\(name)' is not valid percent-encoded UTF-8")
            }
            guard values.updateValue(value, forKey: name) == nil else {
                throw APIError.badRequest("query parameter '\(name)' is given more than once")
            }
        }
    }

    subscript(name: String) -> String? { values[name] }

    /// Every parameter given, decoded.
    var decoded: [String: String] { values }

    /// A non-negative whole-number parameter, or a 400 naming it.
    func integer(_ name: String) throws(APIError) -> Int? {
        guard let text = values[name] else { return nil }
        guard let value = Int(text), value >= 0 else {
            throw APIError.badRequest(
                "query parameter '\(name)' must be a whole number from 0 to \(Int.max) (at most 19 digits), not '\(text.prefix(50))'")
        }
        return value
    }
}

/// `%XX` decoding of URL parts, as UTF-8.
enum PercentEncoding {
    /// The decoded text, or nil when a `%` is malformed or the bytes are not UTF-8. In a query
    /// (`plusIsSpace`), `+` is a space, as forms encode it.
    static func decode(_ text: Substring, plusIsSpace: Bool) -> String? {
        guard text.utf8.contains(where: { $0 == UInt8(ascii: "%") || (plusIsSpace && $0 == UInt8(ascii: "+")) }) else { return String(text) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            switch byte {
            case UInt8(ascii: "+") where plusIsSpace:
                bytes.append(UInt8(ascii: " "))
            case UInt8(ascii: "%"):
                guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else { return nil }
                bytes.append(high << 4 | low)
            default:
                bytes.append(byte)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

extension Request {
    /// The query, checked against the parameters the route knows.
    func query(known: [String]) throws(APIError) -> QueryParameters {
        try QueryParameters(uri.query, known: known)
    }

    /// `?pretty=1` (or `true`), read leniently: error responses use it, whatever else is wrong.
    var wantsPrettyJSON: Bool {
        guard let query = uri.query, query.contains("pretty") else { return false }
        for pair in query.split(separator: "&") where pair == "pretty" || pair.hasPrefix("pretty=") {
            let value = pair.dropFirst("pretty".count).drop { $0 == "=" }
            return value.isEmpty || value == "1" || value == "true"
        }
        return false
    }
}

extension QueryParameters {
    /// `?pretty=` checked: 1, true, 0 or false; anything else is a 400.
    var pretty: Bool {
        get throws(APIError) {
            guard let value = self["pretty"] else { return false }
            switch value {
            case "1", "true", "": return true
            case "0", "false": return false
            default: throw APIError.badRequest("pretty must be 1, true, 0 or false, not '\(value.prefix(40))'")
            }
        }
    }
}
