public import HDF5
import MedSegData

/// Writers of MedSegPy-layout files for the tests, with values the tests can recompute.
public enum Fixtures {
    /// A distinct, exactly representable value for every element of an image.
    public static func imageValues(count: Int, seed: Int) -> [Float] {
        (0..<count).map { Float(seed * 1000 + $0 % 997) / 8 }
    }

    /// Mask values of 0 and 1 that differ between channels.
    public static func maskValues(count: Int, channels: Int, seed: Int) -> [UInt8] {
        (0..<count).map { index in UInt8((index / channels + index % channels + seed) % 3 == 0 ? 1 : 0) }
    }

    /// Writes `NAME.im` (H x W x 1 float32) and, when labeled, `NAME.seg` (H x W x 1 x C uint8).
    public static func writeSlice(
        in folder: String, _ name: String, height: Int = 8, width: Int = 6, channels: Int = 6, seed: Int = 1, labeled: Bool = true
    ) throws {
        let image = try HDF5File.create("\(folder)/\(name).im")
        try image.write("data", imageValues(count: height * width, seed: seed), shape: [height, width, 1])
        guard labeled else { return }
        let mask = try HDF5File.create("\(folder)/\(name).seg")
        try mask.write("data", maskValues(count: height * width * channels, channels: channels, seed: seed), shape: [height, width, 1, channels])
    }

    /// Writes a 3D scan file (or a group of one) with `volume` H x W x D and `seg` H x W x D x C.
    public static func writeVolume(
        into file: HDF5File, group: String? = nil, shape: [Int] = [8, 6, 4], channels: Int = 6, seed: Int = 1,
        layout: WriteLayout = .contiguous
    ) throws {
        let prefix = group.map { "\($0)/" } ?? ""
        let count = shape.reduce(1, *)
        try file.write(prefix + "volume", imageValues(count: count, seed: seed), shape: shape, layout: layout)
        try file.write(prefix + "seg", maskValues(count: count * channels, channels: channels, seed: seed), shape: shape + [channels])
    }

    /// OAI's categories as YAML, indented for a family.
    public static let oaiCategoriesYAML = """
            categories:
              - {id: 0,      name: femoral cartilage,  abbrev: fc,  color: [220, 20, 60]}
              - {id: [1, 2], name: tibial cartilage,   abbrev: tc,  color: [119, 11, 32]}
              - {id: 3,      name: patellar cartilage, abbrev: pc,  color: [0, 0, 142]}
              - {id: [4, 5], name: meniscus,           abbrev: men, color: [0, 0, 230]}
        """

    /// A config with one family holding the given datasets (`name: {format: ..., ...}` lines).
    public static func config(datasets: [String], server: String = "") -> String {
        """
        \(server)
        families:
          oai:
        \(oaiCategoriesYAML)
            metadata:
              spacing: [0.3125, 0.3125, 0.7]
            datasets:
        \(datasets.map { "      " + $0 }.joined(separator: "\n"))

        """
    }
}
