import AsyncHTTPClient
import Foundation
import Glibc
import HDF5
import MedSegData
import NIOCore
import NIOHTTP1
import TestSupport
import Testing

@Suite("medsegd as a service: systemd notify, SIGHUP reload, tokens, graceful SIGTERM", .serialized)
struct ServiceTests {
    let folder = TemporaryDirectory()

    private func writeConfig(datasets: [String], tokens: Bool = false) {
        folder.write("medsegd.yaml", Fixtures.config(datasets: datasets, server: tokens ? "server: {tokens_file: tokens, shutdown_grace: 20s}" : ""))
    }

    @Test("READY after load, RELOADING/READY around SIGHUP, a bad config refused, tokens reloaded, STOPPING and exit 0")
    func lifecycle() async throws {
        for name in ["0000001_V00-Aug00_001", "0000001_V00-Aug00_002"] { try Fixtures.writeSlice(in: folder.folder("a"), name) }
        try Fixtures.writeSlice(in: folder.folder("b"), "0000002_V00-Aug00_001")
        folder.write("tokens", "first-token\n")
        writeConfig(datasets: ["a: {format: slices-2d, scan_root: a}"], tokens: true)
        let notify = try DatagramReceiver(folder.path + "/notify.sock")
        let daemon = try RunningDaemon(
            config: folder.path + "/medsegd.yaml", environment: ["NOTIFY_SOCKET": notify.name], logPath: folder.path + "/log")
        defer { daemon.stop() }
        let auth = [("Authorization", "Bearer first-token")]

        #expect(try notify.receive().hasPrefix("READY=1\nSTATUS=serving 1 datasets on port"))
        #expect(try await daemon.get("/readyz").status == 200)
        #expect(try await daemon.get("/v1/datasets").status == 401)
        #expect(try await daemon.get("/v1/datasets", headers: auth).body.contains("\"name\":\"a\""))

        // A valid new configuration and new tokens: swapped in whole.
        writeConfig(datasets: ["a: {format: slices-2d, scan_root: a}", "b: {format: slices-2d, scan_root: b}"], tokens: true)
        folder.write("tokens", "second-token\n")
        daemon.signal(SIGHUP)
        #expect(try notify.receive().hasPrefix("RELOADING=1\nMONOTONIC_USEC="))
        #expect(try notify.receive().hasPrefix("READY=1"))
        #expect(try await daemon.get("/v1/datasets", headers: auth).status == 401)
        let listed = try await daemon.get("/v1/datasets", headers: [("Authorization", "Bearer second-token")]).body
        #expect(listed.contains("\"name\":\"a\"") && listed.contains("\"name\":\"b\""))

        // An invalid configuration: refused, logged, and the old catalog keeps serving.
        folder.write("medsegd.yaml", "families: {f: {datasets: {c: {format: nope}}}}\n")
        daemon.signal(SIGHUP)
        #expect(try notify.receive().hasPrefix("RELOADING=1"))
        #expect(try notify.receive().hasPrefix("READY=1"))
        #expect(try await daemon.get("/v1/datasets", headers: [("Authorization", "Bearer second-token")]).body.contains("\"name\":\"b\""))
        #expect(daemon.log.contains("reload refused: invalid configuration"))
        #expect(daemon.log.contains("unknown format 'nope'"))

        daemon.signal(SIGTERM)
        #expect(try notify.receive() == "STOPPING=1")
        #expect(daemon.waitForExit() == 0)
    }

    @Test("SIGTERM lets a response in flight finish, then exits 0")
    func gracefulStop() async throws {
        let root = folder.folder("3d")
        try Fixtures.writeVolume(into: HDF5File.create(root + "/0000001_V00.h5"), shape: [512, 512, 24], channels: 1, seed: 3)
        writeConfig(datasets: ["v: {format: volumes-3d, scan_root: 3d}"])
        let daemon = try RunningDaemon(config: folder.path + "/medsegd.yaml", logPath: folder.path + "/log")
        defer { daemon.stop() }
        while try await daemon.get("/readyz").status != 200 { try await Task.sleep(for: .milliseconds(20)) }

        let request = HTTPClientRequest(url: "http://127.0.0.1:\(daemon.port)/v1/datasets/v/scans/0000001_V00/image?format=raw")
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
        let expected = try #require(response.headers.first(name: "content-length").flatMap(Int.init))
        #expect(expected == 512 * 512 * 24 * 4)
        var received = 0
        var signalled = false
        for try await part in response.body {
            received += part.readableBytes
            if !signalled {
                // The first bytes are here; the rest is still being read from HDF5 and sent.
                daemon.signal(SIGTERM)
                signalled = true
                try await Task.sleep(for: .milliseconds(200))
            }
        }
        #expect(received == expected)
        #expect(daemon.waitForExit() == 0)
        // New connections are refused once it has stopped.
        await #expect(throws: (any Error).self) { _ = try await daemon.get("/healthz", timeout: .seconds(2)) }
    }
}
