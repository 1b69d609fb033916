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
        closeInheritedDescriptors()
        while let line = readLine(strippingNewline: true) {
            HDF5Vetting.exercise(line)
            let answer = Array("ok\n".utf8)
            _ = answer.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
        }
    }
}

/// Closes the regular files this child inherited (HDF5 files the server had open when it
/// started this child, and the locks HDF5 holds through them): they must not stay open here.
/// Only regular files: the runtime's own descriptors (event loops, pipes) are left alone.
private func closeInheritedDescriptors() {
    guard let directory = opendir("/proc/self/fd") else { return }
    var inherited: [Int32] = []
    while let entry = readdir(directory) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        if let descriptor = Int32(name), descriptor > 2, descriptor != dirfd(directory) { inherited.append(descriptor) }
    }
    closedir(directory)
    for descriptor in inherited {
        var info = stat()
        if fstat(descriptor, &info) == 0, info.st_mode & S_IFMT == S_IFREG { close(descriptor) }
    }
}
