import ArgumentParser
import Logging
import MedSegData

struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate a config file and the data it names; print each dataset's counts.",
        discussion: "Exits 0 when everything can be served, 1 when some data cannot, 78 when the configuration is invalid.")

    @Option(name: .long, help: "The YAML configuration file (CONFIG.md).")
    var config: String

    @Flag(help: "Only register the datasets; do not open every item's files.")
    var quick = false

    @Flag(help: "Also read every array whole (finds corrupt chunks; slow on large data).")
    var readData = false

    func run() throws {
        let configuration = try loadConfiguration(config)
        HDF5Vetting.shared.enable(executable: "/proc/self/exe")
        var logger = Logger(label: "medsegd.check")
        logger.logLevel = .critical  // problems are printed below, once
        let catalog = CatalogLoader.load(configuration, logger: logger)
        var problems = catalog.problems
        if !quick {
            for name in catalog.names { problems += CatalogValidator.validate(catalog[name]!, readData: readData) }
        }

        print("configuration: \(configuration.files.joined(separator: ", "))")
        print(pad("dataset", 28) + pad("format", 24) + pad("items", 9) + pad("labeled", 9) + pad("scans", 7) + "subjects")
        for config in configuration.datasets {
            guard let entry = catalog[config.name] else {
                print(pad(config.name, 28) + pad(config.format.rawValue, 24) + "NOT REGISTERED")
                continue
            }
            let labeled = entry.dicts.filter { $0.semSegFile != nil }.count
            print(
                pad(entry.name, 28) + pad(entry.format.rawValue, 24) + pad("\(entry.dicts.count)", 9)
                    + pad("\(labeled)", 9) + pad("\(entry.scans.count)", 7) + "\(entry.numSubjects)")
        }
        for problem in problems { print(problem) }
        let errors = problems.filter { $0.severity == .error }.count
        let warnings = problems.count - errors
        print("\(catalog.names.count) dataset(s), \(catalog.itemCount) item(s), \(errors) error(s), \(warnings) warning(s)")
        if errors > 0 { throw ExitCode(1) }
    }

    private func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
    }
}
