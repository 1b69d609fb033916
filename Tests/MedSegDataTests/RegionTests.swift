import HDF5
import MedSegData
import Testing

@Suite("region=: Python's slice rules")
struct RegionTests {
    private func resolve(_ text: String, _ shape: [Int]) throws -> ResolvedRegion {
        try Region(parsing: text).resolve(for: shape)
    }

    @Test(
        "slices, indices, negatives, clamping and steps",
        arguments: [
            ("0:128,0:128,40:72", [384, 384, 160], [0, 0, 40], [128, 128, 32], [1, 1, 1], [128, 128, 32]),
            (":,:,10", [384, 384, 160], [0, 0, 10], [384, 384, 1], [1, 1, 1], [384, 384]),
            ("-64:", [100], [36], [64], [1], [64]),
            ("::3", [10], [0], [4], [3], [4]),
            ("1:9:4", [10], [1], [2], [4], [2]),
            ("5:2", [10], [0], [0], [1], [0]),
            ("0:1000", [10], [0], [10], [1], [10]),
            ("-1000:5", [10], [0], [5], [1], [5]),
            ("-1", [10, 4], [9, 0], [1, 4], [1, 1], [4]),
            ("", [3, 4], [0, 0], [3, 4], [1, 1], [3, 4]),
            (" 1 , 2:3 ", [3, 4], [1, 2], [1, 1], [1, 1], [1]),
        ])
    func resolves(text: String, shape: [Int], start: [Int], count: [Int], stride: [Int], result: [Int]) throws {
        let region = try resolve(text, shape)
        #expect(region.hyperslab == Hyperslab(start: start, count: count, stride: stride))
        #expect(region.shape == result)
    }

    @Test(
        "errors say what is wrong",
        arguments: [
            ("0:1:0", [10], "step cannot be 0"),
            ("::-1", [10], "steps must be positive"),
            ("10", [10], "index 10 is out of range for axis 0 of length 10"),
            ("-11", [10], "index -11 is out of range"),
            ("1,2", [10], "has 2 components but the array has 1 axes"),
            ("a:b", [10], "is not start:stop:step"),
            ("1:2:3:4", [10], "more than two ':'"),
            (",", [10], "empty component"),
            ("99999999999999999999999", [10], "is not start:stop:step"),
        ])
    func rejects(text: String, shape: [Int], message: String) {
        let error = #expect(throws: Region.ParseError.self) { try resolve(text, shape) }
        #expect(error?.message.contains(message) == true, "\(String(describing: error))")
    }

    @Test("absurd bounds are clamped, not allocated")
    func absurd() throws {
        let region = try resolve("-999999999999999999:999999999999999999:999999999999999999", [384])
        #expect(region.shape == [1])
    }
}

@Suite("categories=: MedSegPy's collect_mask index")
struct CategorySelectionTests {
    @Test func parses() throws {
        #expect(try CategorySelection(json: "[0,[1,2],3,[4,5]]").ids == [.single(0), .collated([1, 2]), .single(3), .collated([4, 5])])
        #expect(try CategorySelection(json: "3").ids == [.single(3)])
        #expect(try CategorySelection(json: "[[7]]").ids == [.single(7)])
        #expect(try CategorySelection(json: " [ 1 , 0 ] ").ids == [.single(1), .single(0)])
    }

    @Test(arguments: ["[]", "[[]]", "[-1]", "[1.5]", "[[[1]]]", "{\"a\":1}", "x", "[\"1\"]", "[1,", String(repeating: "[", count: 5000)])
    func rejects(text: String) {
        #expect(throws: CategorySelection.ParseError.self) { try CategorySelection(json: text) }
    }
}
