import Foundation
import MedSegData
import TestSupport
import Testing

@Suite("The server keys are declared once: docs/CONFIG.md's table follows ServerSettings.keys")
struct ConfigSchemaTests {
    static let configDoc = #filePath.split(separator: "/").dropLast(3).joined(separator: "/")

    @Test("docs/CONFIG.md lists exactly the declared keys, with when a reload applies them and what they do")
    func documentedKeys() throws {
        let text = try String(contentsOfFile: "/" + Self.configDoc + "/docs/CONFIG.md", encoding: .utf8)
        let rows = text.split(separator: "\n").filter { $0.hasPrefix("| `") }.map { line in
            line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
        }.filter { $0.count == 3 && ["at once", "at restart"].contains($0[1]) }
        let documented = rows.map { [String($0[0].dropFirst().dropLast()), $0[1], $0[2]] }
        let declared = ServerSettings.keys.map { [$0.name, $0.reload.rawValue, $0.summary] }
        #expect(documented == declared)
    }

    /// A value other than the default for every key.
    static let changed: [String: String] = [
        "host": "0.0.0.0", "port": "9000", "cache_bytes": "1MiB", "max_batch_items": "7", "max_response_bytes": "2MiB",
        "tokens_file": "tokens", "tls": "{certificate: c.pem, private_key: k.pem}", "shutdown_grace": "3s", "idle_timeout": "4s",
        "max_connections": "9", "max_header_bytes": "2KiB", "max_body_bytes": "3KiB", "access_log": "false", "heap_trim_interval": "0",
        "max_inflight_bytes": "64MiB", "state_dir": "fingerprints",
    ]

    @Test("every declared key is read into its own setting; a reload copies the at-once keys and names the others")
    func everyKeyIsRead() throws {
        #expect(Set(Self.changed.keys) == Set(ServerSettings.keys.map(\.name)), "a declared key has no test value here")
        let folder = TemporaryDirectory()
        let server = "server:\n" + Self.changed.sorted { $0.key < $1.key }.map { "  \($0.key): \($0.value)\n" }.joined()
        folder.write("medsegd.yaml", Fixtures.config(datasets: ["d: {format: slices-2d, scan_root: a}"], server: server))
        let loaded = try ConfigLoader.load(path: folder.path + "/medsegd.yaml").server
        let defaults = ServerSettings()
        for key in ServerSettings.keys {
            #expect(key.differs(loaded, defaults), "\(key.name) was not read")
            var copy = defaults
            key.copy(loaded, &copy)
            #expect(!key.differs(loaded, copy) && ServerSettings.keys.filter { $0.differs(copy, defaults) }.map(\.name) == [key.name])
        }
        let restart = ServerSettings.keys.filter { $0.reload == .atRestart }.map(\.name)
        #expect(defaults.keysNeedingRestart(toBecome: loaded) == restart)
        let reloaded = defaults.applyingReloadableKeys(from: loaded)
        #expect(
            ServerSettings.keys.filter { $0.differs(reloaded, defaults) }.map(\.name)
                == ServerSettings.keys.filter { $0.reload == .atOnce }.map(\.name))
    }
}
