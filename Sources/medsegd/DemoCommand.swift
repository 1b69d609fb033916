import ArgumentParser
import MedSegData

struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Write a small synthetic dataset in all four formats, with its config.")

    @Argument(help: "The folder to write (created if missing).")
    var directory: String

    @Option(help: "The port written into the demo config.")
    var port: Int = 8080

    @Flag(help: "Overwrite a demo already in the folder.")
    var force = false

    func run() throws {
        let configPath = Paths.resolve(directory, against: Paths.currentDirectory) + "/" + DemoDataset.configFileName
        if FileSystem.exists(configPath) && !force {
            printError("\(configPath) exists; pass --force to write the demo again")
            throw ExitCode(1)
        }
        let summary = try DemoDataset.write(to: directory, port: port)
        print("wrote \(summary.fileCount) files; serve them with:")
        print("  medsegd serve --config \(summary.configPath)")
    }
}
