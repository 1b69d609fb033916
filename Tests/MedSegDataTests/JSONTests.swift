import MedSegData
import Testing

@Suite("JSON: parse strictly, write exactly")
struct JSONTests {
    @Test("round trip keeps key order and numbers as written")
    func roundTrip() throws {
        let text = #"{"b":1,"a":[0.50,-2e3,true,null,"x\"\\\n\u00e9"],"c":{}}"#
        let value = try JSONParser.parse(text)
        #expect(String(decoding: JSONWriter.encode(value), as: UTF8.self) == #"{"b":1,"a":[0.50,-2e3,true,null,"x\"\\\né"],"c":{}}"#)
    }

    @Test("pretty output is indented and ends with a newline")
    func pretty() throws {
        let value = try JSONParser.parse(#"{"a":[1,2],"b":{}}"#)
        #expect(String(decoding: JSONWriter.encode(value, pretty: true), as: UTF8.self) == "{\n  \"a\": [\n    1,\n    2\n  ],\n  \"b\": {}\n}\n")
    }

    @Test(arguments: ["", "{", "[1,]", "{\"a\" 1}", "01", "1.", "\"\\x\"", "tru", "[1] 2", "\"\u{01}\"", "\"\\ud800\""])
    func rejects(text: String) {
        #expect(throws: JSONParser.Failure.self) { try JSONParser.parse(text) }
    }

    @Test("nesting is bounded so hostile input cannot exhaust the stack")
    func depth() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        let error = #expect(throws: JSONParser.Failure.self) { try JSONParser.parse(deep) }
        #expect(error?.message.contains("nested deeper") == true)
    }

    @Test("control characters are escaped on output")
    func escapes() {
        #expect(String(decoding: JSONWriter.encode(.string("a\u{01}b\tc")), as: UTF8.self) == #""a\u0001b\tc""#)
    }
}
