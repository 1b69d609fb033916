import AsyncHTTPClient
import Foundation
import Glibc
import NIOCore
import NIOHTTP1

/// `medsegd serve` as a child process, on 127.0.0.1 with a free port, its log in a file.
final class RunningDaemon {
    let process = Process()
    let logPath: String
    private(set) var port = 0

    init(config: String, environment: [String: String] = [:], logPath: String) throws {
        self.logPath = logPath
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.executableURL = try medsegdBinary()
        process.arguments = ["serve", "--config", config, "--host", "127.0.0.1", "--port", "0"]
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardOutput = log
        process.standardError = log
        try process.run()
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if let match = self.log.firstMatch(of: /address=http:\/\/127\.0\.0\.1:(\d+)/) {
                port = Int(match.1)!
                return
            }
            guard process.isRunning else { break }
            usleep(20_000)
        }
        stop()
        throw DaemonError(description: "medsegd did not start: \(self.log)")
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    func signal(_ number: Int32) {
        kill(process.processIdentifier, number)
    }

    /// Waits for the process to exit (killing it after 30 s) and returns its status.
    @discardableResult
    func waitForExit() -> Int32 {
        let deadline = Date().addingTimeInterval(30)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        return process.terminationStatus
    }

    func stop() {
        if process.isRunning { signal(SIGTERM) }
        waitForExit()
    }

    func get(_ path: String, headers: [(String, String)] = [], timeout: TimeAmount = .seconds(30)) async throws -> (status: Int, body: String) {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        let response = try await HTTPClient.shared.execute(request, timeout: timeout)
        var body = try await response.body.collect(upTo: 64 << 20)
        return (Int(response.status.code), body.readString(length: body.readableBytes) ?? "")
    }
}

struct DaemonError: Error, CustomStringConvertible {
    var description: String
}

func medsegdBinary() throws -> URL {
    let bundle = URL(fileURLWithPath: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
    return bundle.deletingLastPathComponent().appendingPathComponent("medsegd")
}
