import MedSegData

/// An array whose files are open and checked: small ones already read (so read errors still
/// become JSON errors), the rest left to stream chunk by chunk.
struct PreparedArray: Sendable {
    /// Up to this many bytes per response are read before the response starts.
    static let prefetchBudget = 8 << 20

    let layout: TensorLayout
    let bytes: [UInt8]?
    let source: (any TensorSource)?

    /// Reads arrays whole, in order, while they fit the budget. Runs on the blocking pool.
    /// On a read error every source is closed.
    static func prepare(_ sources: [any TensorSource], budget: Int = prefetchBudget) throws -> [PreparedArray] {
        var remaining = budget
        var prepared: [PreparedArray] = []
        for (index, source) in sources.enumerated() {
            guard source.layout.byteCount <= remaining else {
                prepared.append(PreparedArray(layout: source.layout, bytes: nil, source: source))
                continue
            }
            remaining -= source.layout.byteCount
            do {
                let bytes = try source.readAll().bytes
                source.close()
                prepared.append(PreparedArray(layout: source.layout, bytes: bytes, source: nil))
            } catch {
                for other in sources[index...] { other.close() }
                for other in prepared { other.source?.close() }
                throw error
            }
        }
        return prepared
    }

    /// Releases sources' HDF5 handles on the blocking pool (a HEAD, a refusal, a failed stream).
    static func close(_ sources: [any TensorSource]) async {
        guard !sources.isEmpty else { return }
        _ = try? await BlockingPool.run { for source in sources { source.close() } }
    }
}
