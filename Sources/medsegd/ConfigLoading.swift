import ArgumentParser
import MedSegData

/// Loads a config file for a command, printing every error and exiting 78 (EX_CONFIG) when invalid.
func loadConfiguration(_ path: String) throws -> Configuration {
    do {
        return try ConfigLoader.load(path: path)
    } catch {
        printError("invalid configuration (\(error.errors.count) error\(error.errors.count == 1 ? "" : "s")):")
        for problem in error.errors { printError("  \(problem)") }
        throw ExitCode(78)
    }
}

func printError(_ line: String) {
    var standardError = StandardError()
    print(line, to: &standardError)
}

struct StandardError: TextOutputStream {
    mutating func write(_ text: String) {
        FileHandleLite.writeStandardError(text)
    }
}
