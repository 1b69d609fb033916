/// What defines the data of items besides their files' versions: where each array lives.
extension TensorReader {
    /// Where the arrays of `items` live, as their dicts say: the dataset's format, then per item
    /// its image and mask files (named under the dataset's roots, as every replica names them)
    /// or, in single-file form, its file and group (a group is not a file of its own, so file
    /// versions alone would not tell two groups apart). Part of cache keys, ETags and the keys
    /// fingerprints are reused by.
    public func storageDescription(items: [Int]) -> String {
        let roots = entry.roots
        let described = items.filter { entry.dicts.indices.contains($0) }.map { index in
            let dict = entry.dicts[index]
            let fields: [String]
            if let file = dict.singlefilePath {
                fields = ["file", roots.shareableName(of: file), "group", dict.fileName, "labeled", dict.semSegFile == nil ? "no" : "yes"]
            } else {
                fields = ["image", roots.shareableName(of: dict.fileName), "mask", dict.semSegFile.map(roots.shareableName(of:)) ?? "-"]
            }
            return fields.map(\.debugDescription).joined(separator: " ")
        }
        return entry.format.rawValue + ": " + described.joined(separator: ";")
    }
}
