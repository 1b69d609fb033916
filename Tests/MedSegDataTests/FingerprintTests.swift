import HDF5
import Testing

@testable import MedSegData

@Suite("Fingerprint parts against references: percentiles, the seeded generator, split names")
struct FingerprintTests {
    /// NumPy's linear percentile, from a sorted copy.
    static func referencePercentile(_ values: [Double], _ q: Double) -> Double {
        let sorted = values.sorted()
        let position = q / 100 * Double(sorted.count - 1)
        let lower = Int(position.rounded(.down))
        let fraction = position - Double(lower)
        guard lower + 1 < sorted.count else { return sorted[lower] }
        return sorted[lower] + (sorted[lower + 1] - sorted[lower]) * fraction
    }

    @Test("selection percentiles equal sorting's, with duplicates, runs and one value; adversarial orders stay bounded")
    func percentiles() {
        var random = SeededRandom(seed: 3)
        for trial in 0..<300 {
            let count = 1 + random.below(trial < 200 ? 50 : 5000)
            let distinct = 1 + random.below(8)
            var values = (0..<count).map { _ in Double(random.below(distinct)) + (trial % 2 == 0 ? random.unit() : 0) }
            if trial % 7 == 0 { values.sort() }
            if trial % 11 == 0 { values.reverse() }
            for q in [0.0, 0.5, 50, 99.5, 100] {
                var copy = values
                let expected = Self.referencePercentile(values, q)
                #expect(abs(Selection.percentile(&copy, q) - expected) <= 1e-12 * max(1, abs(expected)), "q=\(q) over \(values.count) values")
            }
        }
        // Organ-pipe and sawtooth orders (median-of-three's bad cases) finish.
        var pipe = (0..<100_000).map { Double($0 < 50_000 ? $0 : 100_000 - $0) }
        #expect(Selection.percentile(&pipe, 99.5) == Self.referencePercentile((0..<100_000).map { Double($0 < 50_000 ? $0 : 100_000 - $0) }, 99.5))
    }

    @Test("the seeded generator is fixed by its seed and stays below its bound")
    func seededRandom() {
        var first = SeededRandom(text: "scan 1")
        var second = SeededRandom(text: "scan 1")
        #expect((0..<10).map { _ in first.next() } == (0..<10).map { _ in second.next() })
        // The first values of seed 0 are SplitMix64's published ones.
        var zero = SeededRandom(seed: 0)
        #expect(zero.next() == 0xE220_A839_7B1D_CDAF)
        var random = SeededRandom(seed: 9)
        for bound in [1, 2, 3, 7, 1000, Int.max] {
            for _ in 0..<200 { #expect((0..<bound).contains(random.below(bound))) }
        }
    }

    @Test("split names as MedSegPy writes them")
    func splitNames() {
        #expect(SplitHygiene.split(ofDatasetNamed: "oai_2d_train") == .train)
        #expect(SplitHygiene.split(ofDatasetNamed: "oai_2d_val") == .validation)
        #expect(SplitHygiene.split(ofDatasetNamed: "oai_3d_test") == .test)
        #expect(SplitHygiene.split(ofDatasetNamed: "oai-valid") == .validation)
        #expect(SplitHygiene.split(ofDatasetNamed: "interval_scans") == nil)
        #expect(SplitHygiene.split(ofDatasetNamed: "demo_manifest") == nil)
    }
}
