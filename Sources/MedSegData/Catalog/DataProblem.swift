/// Something wrong with data on disk, found while registering a dataset.
///
/// A `warning` leaves the dataset registered without the item; an `error` means the item or
/// the whole dataset could not be registered. `medsegd check` exits non-zero on errors.
public struct DataProblem: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Severity: String, Sendable { case warning, error }

    public var severity: Severity
    public var dataset: String
    /// The file concerned, when there is one.
    public var file: String?
    public var message: String

    public init(_ severity: Severity, dataset: String, file: String? = nil, _ message: String) {
        self.severity = severity
        self.dataset = dataset
        self.file = file
        self.message = message
    }

    public var description: String {
        let place = file.map { " (\($0))" } ?? ""
        return "\(severity.rawValue): dataset '\(dataset)'\(place): \(message)"
    }
}
