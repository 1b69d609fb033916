/// MedSegPy's rules for clean evaluation data, checked at load and by `medsegd check`: warnings,
/// never refusals. Augmentation is for training data only, and a subject belongs to one split.
enum SplitHygiene {
    enum Split: String {
        case train, validation, test
    }

    /// The split a dataset's name marks, as MedSegPy names them (`oai_2d_train`, `oai_2d_val`,
    /// `oai_3d_test`), or nil.
    static func split(ofDatasetNamed name: String) -> Split? {
        let words = Set(name.lowercased().split { !$0.isLetter }.map(String.init))
        if !words.isDisjoint(with: ["test", "testing"]) { return .test }
        if !words.isDisjoint(with: ["val", "valid", "validation", "eval"]) { return .validation }
        if !words.isDisjoint(with: ["train", "training"]) { return .train }
        return nil
    }

    static func problems(_ entries: [CatalogEntry], configs: [DatasetConfig]) -> [DataProblem] {
        var problems: [DataProblem] = []
        for entry in entries {
            guard let split = split(ofDatasetNamed: entry.name), split != .train else { continue }
            let augmented = entry.dicts.filter { $0.augmentation != 0 }
            guard let example = augmented.first else { continue }
            problems.append(
                DataProblem(
                    .warning, dataset: entry.name,
                    "its name marks a \(split.rawValue) split, but \(augmented.count) of its \(entry.dicts.count) items are augmented (Aug != 00, e.g. \(Paths.fileName(of: example.fileName))); MedSegPy augments training data only"
                ))
        }
        let families = Dictionary(configs.map { ($0.name, $0.family) }, uniquingKeysWith: { first, _ in first })
        let byFamily = Dictionary(grouping: entries) { families[$0.name] ?? "" }
        for family in byFamily.keys.sorted() {
            let members = byFamily[family]!
            let subjects = members.map { Set($0.dicts.compactMap(\.subjectID)) }
            for a in members.indices {
                for b in members.indices where b > a {
                    // The same split twice (one set stored two ways) shares subjects by design.
                    let splits = (split(ofDatasetNamed: members[a].name), split(ofDatasetNamed: members[b].name))
                    guard splits.0 != splits.1 else { continue }
                    let shared = subjects[a].intersection(subjects[b]).sorted()
                    guard !shared.isEmpty else { continue }
                    let shown = shared.prefix(5).map(String.init).joined(separator: ", ") + (shared.count > 5 ? ", ..." : "")
                    problems.append(
                        DataProblem(
                            .warning, dataset: members[a].name,
                            "\(shared.count == 1 ? "1 subject (subject_id \(shown)) also appears" : "\(shared.count) subjects (subject_id \(shown)) also appear") in dataset '\(members[b].name)' of family '\(family)': a patient in two splits leaks between training and evaluation"
                        ))
                }
            }
        }
        return problems
    }
}
