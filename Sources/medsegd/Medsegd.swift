import ArgumentParser
import NIOCore
import NIOPosix

@main
struct Medsegd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "medsegd",
        abstract: "Serves medical-image segmentation datasets (MedSegPy layout, HDF5) over HTTP.",
        subcommands: [ServeCommand.self, CheckCommand.self, DemoCommand.self, VetCommand.self],
        defaultSubcommand: nil)

    static func main() async {
        // Async code then runs on NIO's event loops rather than a second pool: a request's
        // handler, its trip to the blocking pool and its writes no longer switch threads each
        // time (measured: see docs/PERFORMANCE.md). Blocking work still goes to the NIOThreadPool.
        NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
        await main(nil)
    }
}
