internal import Yams

/// Reads CONFIG.md's YAML: the main file, then every `include`d file, into one validated
/// `Configuration`. Every problem is collected with its file and line, so one run of
/// `medsegd check` lists them all.
public enum ConfigLoader {
    public static func load(path: String) throws(ConfigErrors) -> Configuration {
        let mainFile = Paths.resolve(path, against: Paths.currentDirectory)
        var reader = ConfigReader()
        let configuration = reader.readMain(mainFile)
        guard reader.errors.isEmpty, let configuration else { throw ConfigErrors(reader.errors) }
        return configuration
    }
}

/// One pass over the config files. Each method reads one level of the schema.
struct ConfigReader {
    var errors: [ConfigError] = []
    private var datasets: [DatasetConfig] = []
    private var files: [String] = []

    static let mainKeys = ["server", "include", "families"]
    static let includedKeys = ["families"]
    static let tlsKeys = ["certificate", "private_key"]
    static let familyKeys = ["categories", "metadata", "datasets"]
    static let datasetKeys = ["format", "scan_root", "path", "categories", "metadata", "roots"]
    static let categoryKeys = ["id", "name", "abbrev", "color"]
    /// Metadata keys medsegd derives from `categories`: setting them by hand would contradict it.
    static let derivedMetadataKeys = [
        "scan_root", "category_ids", "categories", "category_abbreviations", "category_colors",
        "category_id_to_contiguous_id",
    ]

    mutating func readMain(_ file: String) -> Configuration? {
        guard let root = parseFile(file) else { return nil }
        let directory = Paths.directory(of: file)
        var server = ServerSettings()
        if case .mapping(let mapping) = root {
            checkKeys(mapping, allowed: Self.mainKeys, in: "the main config file", file: file)
            if let node = mapping["server"] { server = readServer(node, file: file, directory: directory) }
            if let node = mapping["families"] { readFamilies(node, file: file) }
            if let node = mapping["include"] {
                for included in includedFiles(node, file: file, directory: directory) { readIncluded(included) }
            }
        } else if !isNull(root) {
            fail("the config file must be a YAML mapping (server, include, families)", root, file)
        }
        return Configuration(server: server, datasets: datasets.sorted { $0.name < $1.name }, files: files)
    }

    private mutating func readIncluded(_ file: String) {
        guard let root = parseFile(file) else { return }
        if case .mapping(let mapping) = root {
            checkKeys(mapping, allowed: Self.includedKeys, in: "an included file (it holds only 'families')", file: file)
            if let node = mapping["families"] { readFamilies(node, file: file) }
        } else if !isNull(root) {
            fail("an included file must be a YAML mapping with 'families'", root, file)
        }
    }

    private mutating func parseFile(_ file: String) -> Node? {
        files.append(file)
        let bytes: [UInt8]
        do {
            bytes = try FileSystem.readFile(file)
        } catch {
            errors.append(ConfigError("cannot read config file: \(error.reason)", at: ConfigLocation(file: file)))
            return nil
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            errors.append(ConfigError("config file is not UTF-8 text", at: ConfigLocation(file: file)))
            return nil
        }
        do {
            return try Yams.compose(yaml: text) ?? Node("", Tag(.null))
        } catch let error as YamlError {
            errors.append(ConfigError("invalid YAML: \(Self.describe(error))", at: Self.location(of: error, file: file)))
        } catch {
            errors.append(ConfigError("invalid YAML: \(error)", at: ConfigLocation(file: file)))
        }
        return nil
    }

    private static func describe(_ error: YamlError) -> String {
        switch error {
        case .scanner(let context, let problem, _, _), .parser(let context, let problem, _, _):
            return [context?.text, problem].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: ": ")
        default:
            return "\(error)"
        }
    }

    private static func location(of error: YamlError, file: String) -> ConfigLocation {
        switch error {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _): ConfigLocation(file: file, line: mark.line)
        default: ConfigLocation(file: file)
        }
    }

    // MARK: server

    private mutating func readServer(_ node: Node, file: String, directory: String) -> ServerSettings {
        var server = ServerSettings()
        guard let mapping = mapping(node, "'server'", file) else { return server }
        checkKeys(mapping, allowed: ServerSettings.keys.map(\.name), in: "'server'", file: file)
        for key in ServerSettings.keys {
            if let value = mapping[key.name] { key.read(&self, value, file, directory, &server) }
        }
        return server
    }

    /// `server.tls`: both files or neither.
    mutating func readTLS(_ value: Node, file: String, directory: String) -> TLSSettings?? {
        guard !isNull(value) else { return .some(nil) }
        guard let tls = self.mapping(value, "'server.tls'", file) else { return nil }
        checkKeys(tls, allowed: Self.tlsKeys, in: "'server.tls'", file: file)
        let certificate = tls["certificate"].flatMap { isNull($0) ? nil : string($0, "server.tls.certificate", file) }
        let privateKey = tls["private_key"].flatMap { isNull($0) ? nil : string($0, "server.tls.private_key", file) }
        switch (certificate, privateKey) {
        case (let certificate?, let privateKey?):
            return .some(
                TLSSettings(certificate: Paths.resolve(certificate, against: directory), privateKey: Paths.resolve(privateKey, against: directory)))
        case (nil, nil):
            return .some(nil)
        default:
            fail("server.tls needs both 'certificate' and 'private_key' (only one is set)", value, file)
            return nil
        }
    }

    private mutating func includedFiles(_ node: Node, file: String, directory: String) -> [String] {
        var patterns: [Node] = []
        switch node {
        case .sequence(let sequence): patterns = Array(sequence)
        case .scalar: patterns = [node]
        default: fail("'include' must be a list of file globs", node, file)
        }
        var result: [String] = []
        for patternNode in patterns {
            guard let pattern = string(patternNode, "an 'include' entry", file) else { continue }
            let absolute = Paths.resolve(pattern, against: directory)
            let matches = FileSystem.glob(absolute).filter { $0 != file && !result.contains($0) }
            let isGlob = pattern.contains { "*?[".contains($0) }
            if matches.isEmpty && !isGlob {
                fail("included file '\(pattern)' does not exist", patternNode, file)
            }
            result.append(contentsOf: matches)
        }
        return result
    }

    // MARK: families and datasets

    private mutating func readFamilies(_ node: Node, file: String) {
        if isNull(node) { return }
        guard let families = mapping(node, "'families'", file) else { return }
        for (keyNode, familyNode) in families {
            guard let familyName = string(keyNode, "a family name", file) else { continue }
            readFamily(familyName, familyNode, file: file)
        }
    }

    private mutating func readFamily(_ family: String, _ node: Node, file: String) {
        guard let mapping = mapping(node, "family '\(family)'", file) else { return }
        checkKeys(mapping, allowed: Self.familyKeys, in: "family '\(family)'", file: file)
        let categories = mapping["categories"].flatMap { readCategories($0, owner: "family '\(family)'", file: file) }
        let metadata = mapping["metadata"].flatMap { readMetadata($0, owner: "family '\(family)'", file: file) } ?? JSONObject()
        guard let datasetsNode = mapping["datasets"] else {
            fail("family '\(family)' has no 'datasets'", node, file)
            return
        }
        guard let datasets = self.mapping(datasetsNode, "'datasets' of family '\(family)'", file) else { return }
        for (keyNode, datasetNode) in datasets {
            guard let name = string(keyNode, "a dataset name", file) else { continue }
            guard Self.isValidDatasetName(name) else {
                fail("dataset name '\(name)' may only hold letters, digits, '_', '-' and '.' (it is part of URLs)", keyNode, file)
                continue
            }
            readDataset(name, datasetNode, family: family, categories: categories, metadata: metadata, file: file)
        }
    }

    static func isValidDatasetName(_ name: String) -> Bool {
        !name.isEmpty && name != "." && name != ".." && name.utf8.count <= 200
            && name.unicodeScalars.allSatisfy {
                $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "_-.".unicodeScalars.contains($0))
            }
    }

    private mutating func readDataset(
        _ name: String, _ node: Node, family: String, categories familyCategories: [CategorySpec]?,
        metadata familyMetadata: JSONObject, file: String
    ) {
        let here = location(node, file)
        guard let mapping = mapping(node, "dataset '\(name)'", file) else { return }
        checkKeys(mapping, allowed: Self.datasetKeys, in: "dataset '\(name)'", file: file)
        if let previous = datasets.first(where: { $0.name == name }) {
            fail("dataset '\(name)' is registered twice: in \(previous.source) and in \(here)", node, file)
            return
        }
        guard let formatNode = mapping["format"] else {
            fail("dataset '\(name)' has no 'format' (one of \(Self.formats))", node, file)
            return
        }
        guard let formatName = string(formatNode, "format of dataset '\(name)'", file) else { return }
        guard let format = DatasetFormat(rawValue: formatName) else {
            fail("dataset '\(name)' has unknown format '\(formatName)' (one of \(Self.formats))", formatNode, file)
            return
        }
        let directory = Paths.directory(of: file)
        let locationKey = format.isConfiguredByPath ? "path" : "scan_root"
        let wrongKey = format.isConfiguredByPath ? "scan_root" : "path"
        if let wrong = mapping[wrongKey] {
            fail("dataset '\(name)' (\(format.rawValue)) takes '\(locationKey)', not '\(wrongKey)'", wrong, file)
        }
        guard let locationNode = mapping[locationKey] else {
            fail("dataset '\(name)' (\(format.rawValue)) needs '\(locationKey)'", node, file)
            return
        }
        guard let rawLocation = string(locationNode, "\(locationKey) of dataset '\(name)'", file) else { return }
        var roots: [String] = []
        if let rootsNode = mapping["roots"] {
            if format != .manifest {
                fail("'roots' applies to manifest datasets only", rootsNode, file)
            } else if case .sequence(let sequence) = rootsNode {
                roots = sequence.compactMap { string($0, "a 'roots' entry", file) }.map { Paths.resolve($0, against: directory) }
            } else {
                fail("'roots' of dataset '\(name)' must be a list of folders", rootsNode, file)
            }
        }
        let ownCategories = mapping["categories"].flatMap { readCategories($0, owner: "dataset '\(name)'", file: file) }
        guard let categories = ownCategories ?? familyCategories else {
            if mapping["categories"] == nil {
                fail("dataset '\(name)' has no categories: set them on family '\(family)' or on the dataset", node, file)
            }
            return
        }
        var metadata = familyMetadata
        if let own = mapping["metadata"].flatMap({ readMetadata($0, owner: "dataset '\(name)'", file: file) }) {
            for (key, value) in own.entries { metadata[key] = value }
        }
        var evaluatorType = "SemSegEvaluator"
        if let evaluator = metadata["evaluator_type"] {
            metadata["evaluator_type"] = nil
            if let text = evaluator.stringValue {
                evaluatorType = text
            } else {
                fail("metadata 'evaluator_type' of dataset '\(name)' must be a string", node, file)
            }
        }
        datasets.append(
            DatasetConfig(
                name: name, family: family, format: format, location: Paths.resolve(rawLocation, against: directory),
                categories: categories, evaluatorType: evaluatorType, extraMetadata: metadata, roots: roots, source: here))
    }

    private static var formats: String { DatasetFormat.allCases.map(\.rawValue).joined(separator: ", ") }

    // MARK: categories and metadata

    private mutating func readCategories(_ node: Node, owner: String, file: String) -> [CategorySpec]? {
        guard case .sequence(let sequence) = node, !sequence.isEmpty else {
            fail("'categories' of \(owner) must be a non-empty list", node, file)
            return nil
        }
        let errorCount = errors.count
        var categories: [(spec: CategorySpec, node: Node)] = []
        for (index, item) in sequence.enumerated() {
            let what = "category \(index) of \(owner)"
            guard let mapping = mapping(item, what, file) else { continue }
            checkKeys(mapping, allowed: Self.categoryKeys, in: what, file: file)
            guard let idNode = mapping["id"] else {
                fail("\(what) has no 'id'", item, file)
                continue
            }
            guard let nameNode = mapping["name"] else {
                fail("\(what) has no 'name'", item, file)
                continue
            }
            guard let id = categoryID(idNode, what, file), let name = string(nameNode, "name of \(what)", file) else { continue }
            var spec = CategorySpec(id: id, name: name)
            if let abbrev = mapping["abbrev"] { spec.abbreviation = string(abbrev, "abbrev of \(what)", file) }
            if let color = mapping["color"] { spec.color = rgb(color, "color of \(what)", file) }
            categories.append((spec, item))
        }
        guard errors.count == errorCount else { return nil }
        // MedSegPy's lists are 1-to-1: an id maps to one contiguous id, every category has
        // an abbreviation and a colour or none does.
        var seenIDs: [CategoryID: String] = [:]
        for (spec, item) in categories {
            if let other = seenIDs[spec.id] {
                fail("categories '\(other)' and '\(spec.name)' of \(owner) share the id \(spec.id)", item, file)
            }
            seenIDs[spec.id] = spec.name
        }
        var seenNames = Set<String>()
        for (spec, item) in categories where !seenNames.insert(spec.name).inserted {
            fail("category name '\(spec.name)' appears twice in \(owner)", item, file)
        }
        for (field, has) in [("abbrev", { (spec: CategorySpec) in spec.abbreviation != nil }), ("color", { $0.color != nil })] {
            let with = categories.filter { has($0.spec) }
            if !with.isEmpty, let missing = categories.first(where: { !has($0.spec) }) {
                fail(
                    "category '\(missing.spec.name)' of \(owner) has no '\(field)' but others do (they must be 1-to-1 with categories)", missing.node,
                    file)
            }
        }
        return errors.count == errorCount ? categories.map(\.spec) : nil
    }

    private mutating func categoryID(_ node: Node, _ what: String, _ file: String) -> CategoryID? {
        switch node {
        case .scalar:
            guard let channel = integer(node, "id of \(what)", file, range: 0...65535) else { return nil }
            return .single(channel)
        case .sequence(let sequence):
            let channels = sequence.compactMap { integer($0, "id of \(what)", file, range: 0...65535) }
            guard channels.count == sequence.count else { return nil }
            guard !channels.isEmpty else {
                fail("id of \(what) is an empty list", node, file)
                return nil
            }
            guard Set(channels).count == channels.count else {
                fail("id of \(what) lists a channel twice: \(channels)", node, file)
                return nil
            }
            return channels.count == 1 ? .single(channels[0]) : .collated(channels)
        default:
            fail("id of \(what) must be a channel number or a list of them", node, file)
            return nil
        }
    }

    private mutating func rgb(_ node: Node, _ what: String, _ file: String) -> [Int]? {
        guard case .sequence(let sequence) = node, sequence.count == 3 else {
            fail("\(what) must be [R, G, B]", node, file)
            return nil
        }
        let values = sequence.compactMap { integer($0, what, file, range: 0...255) }
        return values.count == 3 ? values : nil
    }

    private mutating func readMetadata(_ node: Node, owner: String, file: String) -> JSONObject? {
        guard let mapping = mapping(node, "'metadata' of \(owner)", file) else { return nil }
        var object = JSONObject()
        for (keyNode, valueNode) in mapping {
            guard let key = string(keyNode, "a metadata key", file) else { continue }
            if Self.derivedMetadataKeys.contains(key) {
                fail("metadata key '\(key)' of \(owner) is derived from 'categories' (or the dataset's location) and cannot be set", keyNode, file)
                continue
            }
            guard let value = json(valueNode, file) else { continue }
            if key == "spacing" {
                let numbers = value.arrayValue?.compactMap { element -> Double? in
                    if case .number(let text) = element { return Double(text) }
                    return nil
                }
                guard let numbers, numbers.count == value.arrayValue?.count, !numbers.isEmpty, numbers.allSatisfy({ $0 > 0 }) else {
                    fail("metadata 'spacing' of \(owner) must be a list of positive numbers (mm per axis)", valueNode, file)
                    continue
                }
            }
            object[key] = value
        }
        return object
    }

    /// Any YAML value as JSON, types as YAML resolves them.
    private mutating func json(_ node: Node, _ file: String) -> JSONValue? {
        switch node {
        case .scalar:
            switch Self.tagName(node) {
            case .null: return .null
            case .bool: return node.bool.map { .bool($0) }
            case .int: return node.int.map { .int($0) }
            case .float:
                guard let value = node.float, value.isFinite else {
                    fail("'\(node.string ?? "")' is not a finite number", node, file)
                    return nil
                }
                return .double(value)
            default: return node.string.map { .string($0) }
            }
        case .sequence(let sequence):
            let elements = sequence.compactMap { json($0, file) }
            return elements.count == sequence.count ? .array(elements) : nil
        case .mapping(let mapping):
            var object = JSONObject()
            for (keyNode, valueNode) in mapping {
                guard let key = string(keyNode, "a key", file), let value = json(valueNode, file) else { return nil }
                object[key] = value
            }
            return .object(object)
        case .alias:
            fail("YAML aliases are not supported here", node, file)
            return nil
        }
    }

    // MARK: scalar helpers

    static func tagName(_ node: Node) -> Tag.Name {
        Tag.Name(rawValue: node.tag.rawValue)
    }

    private func location(_ node: Node, _ file: String) -> ConfigLocation {
        ConfigLocation(file: file, line: node.mark?.line)
    }

    mutating func fail(_ message: String, _ node: Node, _ file: String) {
        errors.append(ConfigError(message, at: location(node, file)))
    }

    func isNull(_ node: Node) -> Bool {
        if case .scalar = node { return Self.tagName(node) == .null }
        return false
    }

    mutating func mapping(_ node: Node, _ what: String, _ file: String) -> Node.Mapping? {
        guard case .mapping(let mapping) = node else {
            fail("\(what) must be a mapping", node, file)
            return nil
        }
        var seen = Set<String>()
        for (key, _) in mapping {
            if let name = key.string, !seen.insert(name).inserted { fail("key '\(name)' appears twice in \(what)", key, file) }
        }
        return mapping
    }

    mutating func checkKeys(_ mapping: Node.Mapping, allowed: [String], in what: String, file: String) {
        for (key, _) in mapping {
            guard let name = key.string else { continue }
            if !allowed.contains(name) {
                fail("unknown key '\(name)' in \(what) (allowed: \(allowed.joined(separator: ", ")))", key, file)
            }
        }
    }

    mutating func string(_ node: Node, _ what: String, _ file: String) -> String? {
        guard case .scalar(let scalar) = node, Self.tagName(node) != .null else {
            fail("\(what) must be a string", node, file)
            return nil
        }
        return scalar.string
    }

    mutating func integer(_ node: Node, _ what: String, _ file: String, range: ClosedRange<Int>) -> Int? {
        guard case .scalar = node, Self.tagName(node) == .int, let value = node.int else {
            fail("\(what) must be a whole number", node, file)
            return nil
        }
        guard range.contains(value) else {
            fail("\(what) must be in \(range.lowerBound)...\(range.upperBound), not \(value)", node, file)
            return nil
        }
        return value
    }

    /// `30s`, `500ms`, `2m`, `1h`, or a number of seconds.
    mutating func duration(_ node: Node, _ what: String, _ file: String) -> Duration? {
        guard case .scalar(let scalar) = node else {
            fail("\(what) must be a duration such as 30s, 500ms or 2m", node, file)
            return nil
        }
        let text = scalar.string.filter { $0 != " " }.lowercased()
        for (suffix, milliseconds) in [("ms", 1.0), ("s", 1000.0), ("m", 60_000.0), ("h", 3_600_000.0), ("", 1000.0)] where text.hasSuffix(suffix) {
            if let value = Double(text.dropLast(suffix.count)), value >= 0, value <= 86_400_000 / milliseconds {
                return .milliseconds(Int64(value * milliseconds))
            }
        }
        fail("\(what) must be a duration such as 30s, 500ms or 2m, not '\(scalar.string)'", node, file)
        return nil
    }

    mutating func byteSize(_ node: Node, _ what: String, _ file: String) -> ByteSize? {
        guard case .scalar(let scalar) = node, let size = ByteSize(parsing: scalar.string) else {
            fail("\(what) must be a size such as 512MiB, 4GiB, 100MB or a byte count", node, file)
            return nil
        }
        return size
    }

    /// A size of at least `minimum` bytes (`requirement` says it in words).
    mutating func byteSize(_ node: Node, _ what: String, _ file: String, minimum: Int, _ requirement: String) -> ByteSize? {
        guard let size = byteSize(node, what, file) else { return nil }
        guard size.bytes >= minimum else {
            fail("\(what) must be \(requirement)", node, file)
            return nil
        }
        return size
    }

    mutating func bool(_ node: Node, _ what: String, _ file: String) -> Bool? {
        guard Self.tagName(node) == .bool, let flag = node.bool else {
            fail("\(what) must be true or false", node, file)
            return nil
        }
        return flag
    }
}
