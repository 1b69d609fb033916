/// `manifest`: dataset dicts written by hand or by a script, as a JSON array or JSON Lines.
///
/// Every key is kept. Path keys are resolved against the manifest's folder and must stay inside
/// it or one of the dataset's `roots`: a manifest can never make medsegd open other files.
enum ManifestLoader: FormatLoader {
    /// Keys holding file paths.
    static let pathKeys = ["file_name", "sem_seg_file", "singlefile_path"]

    static func load(_ config: DatasetConfig) throws(DataProblem) -> LoadedItems {
        let path = config.location
        let bytes: [UInt8]
        do {
            bytes = try FileSystem.readFile(path)
        } catch {
            throw DataProblem(.error, dataset: config.name, file: path, "cannot read manifest: \(error.reason)")
        }
        let objects = try parse(bytes, config: config)
        let folder = Paths.directory(of: path)
        let roots = [folder] + config.roots
        var result = LoadedItems()
        result.dicts.reserveCapacity(objects.count)
        for (index, object) in objects.enumerated() {
            result.dicts.append(try dict(from: object, index: index, folder: folder, roots: roots, config: config))
        }
        return result
    }

    private static func parse(_ bytes: [UInt8], config: DatasetConfig) throws(DataProblem) -> [JSONObject] {
        let firstByte = bytes.first { ![0x20, 0x0A, 0x0D, 0x09].contains($0) }
        var values: [(value: JSONValue, line: Int?)] = []
        do {
            if firstByte == UInt8(ascii: "[") {
                guard case .array(let elements) = try JSONParser.parse(bytes) else { fatalError("unreachable") }
                values = elements.map { ($0, nil) }
            } else {
                var lineNumber = 0
                for line in bytes.split(separator: 0x0A, omittingEmptySubsequences: false) {
                    lineNumber += 1
                    guard line.contains(where: { ![0x20, 0x0D, 0x09].contains($0) }) else { continue }
                    do {
                        values.append((try JSONParser.parse(Array(line)), lineNumber))
                    } catch {
                        throw DataProblem(.error, dataset: config.name, file: config.location, "line \(lineNumber): invalid JSON: \(error)")
                    }
                }
            }
        } catch let problem as DataProblem {
            throw problem
        } catch {
            throw DataProblem(.error, dataset: config.name, file: config.location, "invalid JSON: \(error)")
        }
        var objects: [JSONObject] = []
        for (index, entry) in values.enumerated() {
            guard case .object(let object) = entry.value else {
                let place = entry.line.map { "line \($0)" } ?? "item \(index)"
                throw DataProblem(
                    .error, dataset: config.name, file: config.location, "\(place) is \(entry.value.typeName), not a dataset dict (an object)")
            }
            objects.append(object)
        }
        return objects
    }

    private static func dict(
        from original: JSONObject, index: Int, folder: String, roots: [String], config: DatasetConfig
    ) throws(DataProblem) -> DatasetDict {
        func problem(_ message: String) -> DataProblem {
            DataProblem(.error, dataset: config.name, file: config.location, "item \(index): \(message)")
        }
        var object = original
        for key in pathKeys {
            guard let value = object[key] else { continue }
            guard let relative = value.stringValue, !relative.isEmpty, !relative.utf8.contains(0) else {
                throw problem("'\(key)' must be a path string")
            }
            // In the single-file form, file_name is a group inside singlefile_path, not a path.
            if object["singlefile_path"] != nil, key != "singlefile_path" { continue }
            let absolute = Paths.resolve(relative, against: folder)
            guard roots.contains(where: { Paths.isInside(absolute, root: $0) }) else {
                throw problem("'\(key)' points outside the manifest's folder and the dataset's roots")
            }
            object[key] = .string(absolute)
        }
        guard let fileName = object["file_name"]?.stringValue else { throw problem("has no 'file_name'") }
        func integer(_ key: String) throws(DataProblem) -> Int? {
            guard let value = object[key] else { return nil }
            guard let number = value.intValue else { throw problem("'\(key)' must be a whole number") }
            return number
        }
        var imageSize: [Int]?
        if let size = object["image_size"] {
            guard let elements = size.arrayValue, case let dims = elements.compactMap(\.intValue), dims.count == elements.count,
                dims.allSatisfy({ $0 >= 0 })
            else { throw problem("'image_size' must be a list of whole numbers") }
            imageSize = dims
        }
        var scanID: String?
        if let value = object["scan_id"] {
            guard let text = value.stringValue else { throw problem("'scan_id' must be a string") }
            scanID = text
        }
        return DatasetDict(
            fileName: fileName,
            semSegFile: object["sem_seg_file"]?.stringValue,
            scanID: scanID,
            subjectID: try integer("subject_id"),
            timePoint: try integer("time_point"),
            aug: try integer("aug"),
            sliceID: try integer("slice_id"),
            scanNumSlices: try integer("scan_num_slices"),
            imageSize: imageSize,
            singlefilePath: object["singlefile_path"]?.stringValue,
            manifestFields: object)
    }
}
