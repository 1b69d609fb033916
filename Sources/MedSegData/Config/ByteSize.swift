/// A number of bytes written the way operators write them: `512MiB`, `4GiB`, `100MB`, `1048576`.
public struct ByteSize: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var bytes: Int

    public init(bytes: Int) { self.bytes = bytes }

    public static func < (lhs: ByteSize, rhs: ByteSize) -> Bool { lhs.bytes < rhs.bytes }

    private static let units: [(suffix: String, factor: Int)] = [
        ("kib", 1 << 10), ("mib", 1 << 20), ("gib", 1 << 30), ("tib", 1 << 40),
        ("kb", 1_000), ("mb", 1_000_000), ("gb", 1_000_000_000), ("tb", 1_000_000_000_000),
        ("k", 1 << 10), ("m", 1 << 20), ("g", 1 << 30), ("t", 1 << 40), ("b", 1),
    ]

    /// Parses `512MiB` (binary), `100MB` (decimal), `1.5GiB`, or a plain byte count.
    public init?(parsing text: String) {
        let trimmed = text.filter { $0 != " " && $0 != "\t" }.lowercased()
        var number = trimmed
        var factor = 1
        for unit in Self.units where trimmed.hasSuffix(unit.suffix) {
            number = String(trimmed.dropLast(unit.suffix.count))
            factor = unit.factor
            break
        }
        if let whole = Int(number), whole >= 0 {
            let (product, overflow) = whole.multipliedReportingOverflow(by: factor)
            guard !overflow else { return nil }
            self.bytes = product
        } else if let fraction = Double(number), fraction >= 0, fraction.isFinite,
            fraction * Double(factor) < Double(Int.max), number.first?.isNumber == true
        {
            self.bytes = Int(fraction * Double(factor))
        } else {
            return nil
        }
    }

    public var description: String {
        for (suffix, factor) in [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] where bytes >= factor && bytes % factor == 0 {
            return "\(bytes / factor)\(suffix)"
        }
        return "\(bytes)B"
    }
}
