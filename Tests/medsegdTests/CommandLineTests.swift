import Foundation
import MedSegData
import TestSupport
import Testing

/// Runs the built `medsegd` binary (it sits beside the test bundle) and collects its output.
func runMedsegd(_ arguments: [String]) throws -> (status: Int32, output: String, errors: String) {
    let bundle = URL(fileURLWithPath: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
    let binary = bundle.deletingLastPathComponent().appendingPathComponent("medsegd")
    let process = Process()
    process.executableURL = binary
    process.arguments = arguments
    let output = Pipe()
    let errors = Pipe()
    process.standardOutput = output
    process.standardError = errors
    try process.run()
    let outputData = output.fileHandleForReading.readDataToEndOfFile()
    let errorData = errors.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: outputData, as: UTF8.self), String(decoding: errorData, as: UTF8.self))
}

@Suite("The medsegd command line")
struct CommandLineTests {
    let folder = TemporaryDirectory()

    @Test("demo writes all four formats; check validates them and prints each dataset's counts")
    func demoThenCheck() throws {
        let demo = try runMedsegd(["demo", folder.path + "/demo"])
        #expect(demo.status == 0, "\(demo.errors)")
        let check = try runMedsegd(["check", "--config", folder.path + "/demo/medsegd.yaml"])
        #expect(check.status == 0, "\(check.output)\(check.errors)")
        for line in [
            "demo_2d_train               slices-2d               40       40       3      3",
            "demo_2d_val                 slices-2d               6        5        1      1",
            "demo_3d_sf_test             volumes-3d-singlefile   2        2        2      2",
            "demo_3d_test                volumes-3d              2        2        2      2",
            "demo_manifest               manifest                4        4        1      1",
            "5 dataset(s), 54 item(s), 0 error(s), 0 warning(s)",
        ] {
            #expect(check.output.contains(line), "\(check.output)")
        }
        let again = try runMedsegd(["demo", folder.path + "/demo"])
        #expect(again.status == 1)
        #expect(again.errors.contains("pass --force"))
    }

    @Test("check exits 78 on an invalid configuration and lists every error with file and line")
    func invalidConfig() throws {
        let path = folder.write("bad.yaml", "server: {prot: 1}\nfamilies: {f: {categories: [{id: 0, name: a}], datasets: {d: {format: nope}}}}\n")
        let check = try runMedsegd(["check", "--config", path])
        #expect(check.status == 78)
        #expect(check.errors.contains("invalid configuration (2 errors):"))
        #expect(check.errors.contains("\(path):1: unknown key 'prot' in 'server'"))
        #expect(check.errors.contains("\(path):2: dataset 'd' has unknown format 'nope'"))
    }

    @Test("check exits 1 when data cannot be served, naming every broken file")
    func brokenData() throws {
        folder.write("3d/0000001_V00.h5", "not HDF5")
        folder.write("3d/0000002_V00.h5", "not HDF5 either")
        let path = folder.write(
            "medsegd.yaml",
            Fixtures.config(datasets: [
                "broken: {format: volumes-3d, scan_root: 3d}", "missing: {format: slices-2d, scan_root: nowhere}",
            ]))
        let check = try runMedsegd(["check", "--config", path])
        #expect(check.status == 1)
        #expect(check.output.contains("0000001_V00.h5"))
        #expect(check.output.contains("0000002_V00.h5"))
        #expect(check.output.contains("missing                     slices-2d               NOT REGISTERED"))
        #expect(check.output.contains("3 error(s)"))
    }

    @Test("serve refuses an invalid configuration before listening")
    func serveInvalid() throws {
        let path = folder.write("bad.yaml", "server: {port: 99999}\n")
        let serve = try runMedsegd(["serve", "--config", path])
        #expect(serve.status == 78)
        #expect(serve.errors.contains("server.port must be in 0...65535"))
    }
}
