/// A sampled volume is no longer what its fingerprint describes: a file was rewritten or
/// replaced without a reload. Its foreground index may point anywhere; the sample is refused
/// (the server answers 503 and recomputes) rather than sent with stale patches.
public struct StaleFingerprint: Error, Sendable, CustomStringConvertible {
    public var scanID: String
    public var aug: Int

    public var description: String {
        "the files of scan '\(scanID.prefix(100))' (aug \(aug)) changed since its fingerprint was computed"
    }
}

extension TensorReader {
    /// Checks that every volume `plans` draw from still has the files, groups and categories its
    /// record was computed from, and returns the file versions the records name (`path` →
    /// identity): the patches' reads must open exactly those.
    public func checkFingerprints(of plans: [PatchPlan], records: [ScanRecord]) throws -> [String: String] {
        let computer = FingerprintComputer(reader: self)
        var expected: [String: String] = [:]
        var checked = Set<String>()
        for plan in plans where checked.insert("\(plan.aug) \(plan.scanID)").inserted {
            // A volume gone from the catalog (a reload mid-request) is as stale as a changed one.
            guard let record = records.first(where: { $0.key.scanID == plan.scanID && $0.key.aug == plan.aug }),
                (try? computer.key(scanID: plan.scanID, aug: plan.aug)) == record.key
            else { throw StaleFingerprint(scanID: plan.scanID, aug: plan.aug) }
            for file in record.key.files {
                // "path identity": the path may hold spaces, the identity never does.
                guard let space = file.lastIndex(of: " ") else { continue }
                expected[String(file[..<space])] = String(file[file.index(after: space)...])
            }
        }
        return expected
    }

    /// Throws when `source` opened a file version other than its fingerprint's.
    func checkOpened(_ source: any TensorSource, expected: [String: String], plan: PatchPlan) throws(StaleFingerprint) {
        for (path, identity) in source.openedFiles where expected[path].map({ $0 != identity.description }) ?? false {
            throw StaleFingerprint(scanID: plan.scanID, aug: plan.aug)
        }
    }
}
