import FoundationEssentials
import Glibc

/// Fingerprint records persisted under `server.state_dir`, one JSON file per dataset
/// (`fingerprints/<dataset>.json`): a restart reads them back and recomputes only the volumes
/// whose files or categories changed. Files are replaced atomically (written aside, renamed).
public struct FingerprintArchive: Sendable {
    public let directory: String

    public init(stateDirectory: String) {
        directory = stateDirectory + "/fingerprints"
    }

    /// Version 3: keys name where each volume's arrays live (earlier files are recomputed).
    struct Contents: Codable {
        var version = 3
        var dataset: String
        var records: [ScanRecord]
    }

    private func path(of dataset: String) -> String {
        // Dataset names are config keys: letters, digits, '_', '-' and '.'; anything else is escaped.
        let safe = dataset.unicodeScalars.map { scalar -> String in
            let allowed = (scalar.isASCII && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar))) || "_-".unicodeScalars.contains(scalar)
            return allowed ? String(scalar) : "%" + String(scalar.value, radix: 16)
        }.joined()
        return "\(directory)/\(safe).json"
    }

    /// The records saved for `dataset` (none when there is no file or it cannot be read).
    public func load(_ dataset: String) -> [ScanRecord] {
        guard let data = FileManager.default.contents(atPath: path(of: dataset)),
            let contents = try? Self.decoder.decode(Contents.self, from: data), contents.version == 3, contents.dataset == dataset
        else { return [] }
        return contents.records
    }

    /// Saves `records` for `dataset`, replacing the file whole.
    public func save(_ dataset: String, records: [ScanRecord]) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let data = try Self.encoder.encode(Contents(dataset: dataset, records: records))
        let target = path(of: dataset)
        let temporary = target + ".tmp-\(getpid())"
        try data.write(to: URL(fileURLWithPath: temporary))
        guard rename(temporary, target) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw SaveError(message: "cannot replace \(target): \(reason)")
        }
    }

    public struct SaveError: Error, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        return encoder
    }()

    static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        return decoder
    }()
}
