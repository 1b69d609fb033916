/// MedSegPy's 2D slice naming convention, `%07d_V%02d-Aug%02d_%03d` (e.g. `0123456_V01-Aug04_072`).
///
/// Matched as MedSegPy's regex `([\d]+)_V([\d]+)-Aug([\d]+)_([\d]+)` on the whole file stem,
/// by hand: a regex costs more than the rest of a 1,000,000-file scan together.
public struct SliceName: Hashable, Sendable {
    public var subjectID: Int
    public var timePoint: Int
    public var aug: Int
    /// 1-indexed.
    public var sliceID: Int

    public init(subjectID: Int, timePoint: Int, aug: Int, sliceID: Int) {
        self.subjectID = subjectID
        self.timePoint = timePoint
        self.aug = aug
        self.sliceID = sliceID
    }

    /// Parses a file stem (the name without `.im`/`.seg`); `nil` when it does not follow the convention.
    public init?(stem: Substring) {
        var utf8 = stem.utf8[...]
        guard let subject = Self.number(&utf8), Self.literal("_V", &utf8),
            let timePoint = Self.number(&utf8), Self.literal("-Aug", &utf8),
            let aug = Self.number(&utf8), Self.literal("_", &utf8),
            let slice = Self.number(&utf8), utf8.isEmpty
        else { return nil }
        self.init(subjectID: subject, timePoint: timePoint, aug: aug, sliceID: slice)
    }

    public init?(stem: String) {
        self.init(stem: stem[...])
    }

    /// Parses a stem given as UTF-8 bytes (a directory entry), reporting whether it is written
    /// exactly as `%07d_V%02d-Aug%02d_%03d` would write these numbers.
    init?(bytes: UnsafeBufferPointer<UInt8>, canonical: inout Bool) {
        var position = 0
        func number(_ widths: inout [Int]) -> Int? {
            var value = 0
            var count = 0
            while position < bytes.count, bytes[position] >= UInt8(ascii: "0"), bytes[position] <= UInt8(ascii: "9") {
                guard count < 18 else { return nil }
                value = value * 10 + Int(bytes[position] - UInt8(ascii: "0"))
                count += 1
                position += 1
            }
            widths.append(count)
            return count > 0 ? value : nil
        }
        func literal(_ text: StaticString) -> Bool {
            let count = text.utf8CodeUnitCount
            guard position + count <= bytes.count else { return false }
            for offset in 0..<count where bytes[position + offset] != text.utf8Start[offset] { return false }
            position += count
            return true
        }
        var widths: [Int] = []
        widths.reserveCapacity(4)
        guard let subject = number(&widths), literal("_V"), let timePoint = number(&widths), literal("-Aug"),
            let aug = number(&widths), literal("_"), let slice = number(&widths), position == bytes.count
        else { return nil }
        self.init(subjectID: subject, timePoint: timePoint, aug: aug, sliceID: slice)
        canonical = widths == [7, 2, 2, 3]
    }

    /// The four numbers in one Int, for names written canonically (subject < 10^7, time point
    /// and augmentation < 100, slice < 1000): unique per canonical name, cheap to hash.
    var packedCanonicalKey: Int {
        ((subjectID * 100 + timePoint) * 100 + aug) * 1000 + sliceID
    }

    /// MedSegPy's scan id: subject and time point, without the augmentation.
    public var scanID: String { Self.scanID(subjectID: subjectID, timePoint: timePoint) }

    public static func scanID(subjectID: Int, timePoint: Int) -> String {
        pad(subjectID, 7) + "_V" + pad(timePoint, 2)
    }

    /// The canonical file stem for these numbers.
    public var stem: String {
        scanID + "-Aug" + Self.pad(aug, 2) + "_" + Self.pad(sliceID, 3)
    }

    static func pad(_ value: Int, _ width: Int) -> String {
        let digits = String(value)
        return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
    }

    private static func number(_ utf8: inout Substring.UTF8View.SubSequence) -> Int? {
        var value = 0
        var count = 0
        while let byte = utf8.first, byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") {
            // 18 digits always fit in an Int; longer runs are not slice names.
            guard count < 18 else { return nil }
            value = value * 10 + Int(byte - UInt8(ascii: "0"))
            count += 1
            utf8 = utf8.dropFirst()
        }
        return count > 0 ? value : nil
    }

    private static func literal(_ text: StaticString, _ utf8: inout Substring.UTF8View.SubSequence) -> Bool {
        let count = text.utf8CodeUnitCount
        guard utf8.count >= count else { return false }
        var index = utf8.startIndex
        for offset in 0..<count {
            guard utf8[index] == text.utf8Start[offset] else { return false }
            index = utf8.index(after: index)
        }
        utf8 = utf8[index...]
        return true
    }
}

/// The `([\d]+)_V([\d]+)` part of 3D file and group names (searched anywhere, as MedSegPy does).
public struct ScanName: Hashable, Sendable {
    public var subjectID: Int
    public var timePoint: Int

    public init?(searching name: String) {
        let bytes = Array(name.utf8)
        var index = 0
        while index < bytes.count {
            // Find a run of digits followed by "_V" and more digits.
            guard bytes[index].isDigit, index == 0 || !bytes[index - 1].isDigit else {
                index += 1
                continue
            }
            var end = index
            while end < bytes.count, bytes[end].isDigit { end += 1 }
            if end + 2 < bytes.count, bytes[end] == UInt8(ascii: "_"), bytes[end + 1] == UInt8(ascii: "V"), bytes[end + 2].isDigit {
                var timeEnd = end + 2
                while timeEnd < bytes.count, bytes[timeEnd].isDigit { timeEnd += 1 }
                if end - index <= 18, timeEnd - end - 2 <= 18,
                    let subject = Int(String(decoding: bytes[index..<end], as: UTF8.self)),
                    let time = Int(String(decoding: bytes[(end + 2)..<timeEnd], as: UTF8.self))
                {
                    subjectID = subject
                    timePoint = time
                    return
                }
            }
            index = end
        }
        return nil
    }

    public var scanID: String { SliceName.scanID(subjectID: subjectID, timePoint: timePoint) }
}

extension UInt8 {
    fileprivate var isDigit: Bool { self >= UInt8(ascii: "0") && self <= UInt8(ascii: "9") }
}
