import ArgumentParser

@main
struct Medsegd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "medsegd",
        abstract: "Serves medical-image segmentation datasets (MedSegPy layout, HDF5) over HTTP.",
        subcommands: [ServeCommand.self, CheckCommand.self, DemoCommand.self, VetCommand.self],
        defaultSubcommand: nil)
}
