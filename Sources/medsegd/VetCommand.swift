import ArgumentParser
import Glibc
import MedSegData

/// `medsegd vet`: the child process of `HDF5Vetting`. Reads file paths, one a line, from standard
/// input; opens each with HDF5 the way the server's readers do and answers `ok` on standard output.
/// If the HDF5 library crashes on a file, this process dies instead of the server.
struct VetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vet", abstract: "Internal: checks HDF5 files for the server in a separate process.", shouldDisplay: false)

    func run() throws {
        while let line = readLine(strippingNewline: true) {
            HDF5Vetting.exercise(line)
            let answer = Array("ok\n".utf8)
            _ = answer.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
        }
    }
}
