/// Writes JSON into a byte array, compact or indented (`?pretty=1`).
///
/// Values are appended piece by piece so that large documents (dict lists) can be written
/// in chunks and streamed without first building one giant string.
public struct JSONWriter {
    public private(set) var bytes: [UInt8] = []
    public let pretty: Bool
    private var depth = 0
    /// Per open container: whether it already holds an element (a comma is due).
    private var hasElement: [Bool] = []
    /// A key was just written; the value follows without a comma or newline.
    private var afterKey = false

    public init(pretty: Bool = false, reserving capacity: Int = 0) {
        self.pretty = pretty
        bytes.reserveCapacity(capacity)
    }

    /// Hands over what has been written so far and starts a fresh buffer (container state is kept).
    public mutating func takeBytes() -> [UInt8] {
        defer {
            bytes = []
            bytes.reserveCapacity(64 * 1024)
        }
        return bytes
    }

    private mutating func beginElement() {
        if afterKey {
            afterKey = false
            return
        }
        if let last = hasElement.last {
            if last { bytes.append(UInt8(ascii: ",")) }
            hasElement[hasElement.count - 1] = true
            newline()
        }
    }

    private mutating func newline() {
        guard pretty else { return }
        bytes.append(UInt8(ascii: "\n"))
        for _ in 0..<depth { bytes.append(contentsOf: [0x20, 0x20]) }
    }

    public mutating func beginObject() { open(UInt8(ascii: "{")) }
    public mutating func endObject() { close(UInt8(ascii: "}")) }
    public mutating func beginArray() { open(UInt8(ascii: "[")) }
    public mutating func endArray() { close(UInt8(ascii: "]")) }

    private mutating func open(_ bracket: UInt8) {
        beginElement()
        bytes.append(bracket)
        depth += 1
        hasElement.append(false)
    }

    private mutating func close(_ bracket: UInt8) {
        depth -= 1
        if hasElement.removeLast() { newline() }
        bytes.append(bracket)
    }

    public mutating func key(_ name: String) {
        beginElement()
        writeEscaped(name)
        bytes.append(UInt8(ascii: ":"))
        if pretty { bytes.append(0x20) }
        afterKey = true
    }

    public mutating func string(_ value: String) {
        beginElement()
        writeEscaped(value)
    }

    public mutating func int(_ value: Int) {
        beginElement()
        bytes.append(contentsOf: String(value).utf8)
    }

    public mutating func bool(_ value: Bool) {
        beginElement()
        bytes.append(contentsOf: (value ? "true" : "false").utf8)
    }

    public mutating func null() {
        beginElement()
        bytes.append(contentsOf: "null".utf8)
    }

    /// A number given as JSON text (kept exactly as parsed).
    public mutating func number(_ text: String) {
        beginElement()
        bytes.append(contentsOf: text.utf8)
    }

    public mutating func value(_ value: JSONValue) {
        switch value {
        case .null: null()
        case .bool(let flag): bool(flag)
        case .number(let text): number(text)
        case .string(let text): string(text)
        case .array(let elements):
            beginArray()
            for element in elements { self.value(element) }
            endArray()
        case .object(let object):
            beginObject()
            for (name, element) in object.entries {
                key(name)
                self.value(element)
            }
            endObject()
        }
    }

    /// Ends the document; pretty output ends with a newline, as curl users expect.
    /// Ends the document: pretty ones with a newline.
    public mutating func finish() {
        if pretty { bytes.append(UInt8(ascii: "\n")) }
    }

    /// Ends the document with a newline, compact or pretty: HTTP bodies, so that `curl` output
    /// ends its line.
    public mutating func finishLine() {
        bytes.append(UInt8(ascii: "\n"))
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    private mutating func writeEscaped(_ text: String) {
        bytes.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes.append(contentsOf: [0x5C, 0x22])
            case UInt8(ascii: "\\"): bytes.append(contentsOf: [0x5C, 0x5C])
            case 0x0A: bytes.append(contentsOf: [0x5C, UInt8(ascii: "n")])
            case 0x0D: bytes.append(contentsOf: [0x5C, UInt8(ascii: "r")])
            case 0x09: bytes.append(contentsOf: [0x5C, UInt8(ascii: "t")])
            case 0..<0x20:
                bytes.append(contentsOf: [0x5C, UInt8(ascii: "u"), 0x30, 0x30])
                bytes.append(Self.hexDigits[Int(byte >> 4)])
                bytes.append(Self.hexDigits[Int(byte & 0xF)])
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    /// One value as a complete document (`line`: always ending with a newline).
    public static func encode(_ value: JSONValue, pretty: Bool = false, line: Bool = false) -> [UInt8] {
        var writer = JSONWriter(pretty: pretty)
        writer.value(value)
        if line { writer.finishLine() } else { writer.finish() }
        return writer.bytes
    }
}
