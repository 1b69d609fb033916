/// `slices-2d`: a folder of `%07d_V%02d-Aug%02d_%03d.im` images with `.seg` masks beside them,
/// registered like MedSegPy's `load_oai_2d_from_dir` but with `scan_num_slices` counted on disk.
enum Slices2DLoader: FormatLoader {
    static func load(_ config: DatasetConfig) throws(DataProblem) -> LoadedItems {
        let root = config.location
        var images: [(name: String, slice: SliceName, canonical: Bool)] = []
        // Masks by their numbers packed in one Int when the name is canonical (no string hashing).
        var canonicalMasks = Set<Int>()
        var otherMasks = Set<String>()
        var allImagesCanonical = true
        var unmatched = 0
        var firstUnmatched: String?
        do {
            try FileSystem.scanDirectory(root) { name, kind in
                guard kind == .file else { return }
                let isImage = name.hasSuffix(".im")
                let isMask = !isImage && name.hasSuffix(".seg")
                guard isImage || isMask else { return }
                let stem = UnsafeBufferPointer(rebasing: name[0..<(name.count - (isImage ? 3 : 4))])
                var canonical = false
                guard let slice = SliceName(bytes: stem, canonical: &canonical) else {
                    unmatched += 1
                    let text = String(decoding: name, as: UTF8.self)
                    if firstUnmatched.map({ text.utf8.lexicographicallyPrecedes($0.utf8) }) ?? true { firstUnmatched = text }
                    return
                }
                if isImage {
                    images.append((String(decoding: name, as: UTF8.self), slice, canonical))
                    allImagesCanonical = allImagesCanonical && canonical
                } else if canonical {
                    canonicalMasks.insert(slice.packedCanonicalKey)
                } else {
                    otherMasks.insert(String(decoding: stem, as: UTF8.self))
                }
            }
        } catch {
            throw DataProblem(.error, dataset: config.name, file: root, "cannot list scan_root: \(error.reason)")
        }
        // MedSegPy sorts file names. Names written exactly as %07d_V%02d-Aug%02d_%03d sort like
        // their numbers, which is much faster to compare; any other name needs the byte order.
        if allImagesCanonical {
            images.sort {
                ($0.slice.subjectID, $0.slice.timePoint, $0.slice.aug, $0.slice.sliceID) < (
                    $1.slice.subjectID, $1.slice.timePoint, $1.slice.aug, $1.slice.sliceID
                )
            }
        } else {
            images.sort { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
        }

        var sliceCounts: [VolumeKey: Int] = [:]
        for image in images { sliceCounts[VolumeKey(image.slice), default: 0] += 1 }

        var result = LoadedItems()
        result.dicts.reserveCapacity(images.count)
        let prefix = root == "/" ? "/" : root + "/"
        for (name, slice, canonical) in images {
            let stem = name.dropLast(3)
            // The mask is the .seg with the same stem: canonical stems are found by their numbers.
            let labeled = canonical ? canonicalMasks.contains(slice.packedCanonicalKey) : otherMasks.contains(String(stem))
            result.dicts.append(
                DatasetDict(
                    fileName: prefix + name,
                    semSegFile: labeled ? prefix + stem + ".seg" : nil,
                    scanID: slice.scanID,
                    subjectID: slice.subjectID,
                    timePoint: slice.timePoint,
                    aug: slice.aug,
                    sliceID: slice.sliceID,
                    scanNumSlices: sliceCounts[VolumeKey(slice)]))
        }
        if unmatched > 0 {
            result.problems.append(
                DataProblem(
                    .warning, dataset: config.name, file: root,
                    "skipped \(unmatched) .im/.seg file(s) not named %07d_V%02d-Aug%02d_%03d (first: '\(firstUnmatched ?? "")')"))
        }
        return result
    }

    /// One subject/time point/augmentation volume.
    private struct VolumeKey: Hashable {
        var subjectID: Int, timePoint: Int, aug: Int
        init(_ slice: SliceName) {
            subjectID = slice.subjectID
            timePoint = slice.timePoint
            aug = slice.aug
        }
    }
}

extension UnsafeBufferPointer<UInt8> {
    fileprivate func hasSuffix(_ suffix: StaticString) -> Bool {
        let length = suffix.utf8CodeUnitCount
        guard count >= length else { return false }
        for offset in 0..<length where self[count - length + offset] != suffix.utf8Start[offset] { return false }
        return true
    }
}
