public import MedSegData
import Synchronization

/// Holds the current catalog snapshot. Readers take the whole snapshot once per request;
/// a reload replaces it in one step, so no response ever mixes two catalogs.
public final class CatalogStore: Sendable {
    private let current = Mutex<Catalog?>(nil)

    public init(_ catalog: Catalog? = nil) {
        current.withLock { $0 = catalog }
    }

    /// The snapshot, or `nil` while the first catalog is still loading.
    public var catalog: Catalog? {
        current.withLock { $0 }
    }

    public func replace(with catalog: Catalog) {
        current.withLock { $0 = catalog }
    }
}
