public import MedSegData
import Synchronization

/// Holds the current catalog snapshot. Readers take the whole snapshot once per request;
/// a reload replaces it in one step, so no response ever mixes two catalogs.
///
/// Loads can overlap (a SIGHUP while the first catalog still loads): each load takes a ticket
/// when it starts, and a catalog is installed only when no later-started load was installed
/// before it, so the newest configuration wins whatever order the loads finish in.
public final class CatalogStore: Sendable {
    public struct LoadTicket: Sendable {
        fileprivate let number: Int
    }

    private struct State {
        var catalog: Catalog?
        var issued = 0
        var installed = 0
    }

    private let state = Mutex(State())

    public init(_ catalog: Catalog? = nil) {
        state.withLock { $0.catalog = catalog }
    }

    /// The snapshot, or `nil` while the first catalog is still loading.
    public var catalog: Catalog? {
        state.withLock { $0.catalog }
    }

    /// Called when a load starts, before its configuration is read.
    public func beginLoad() -> LoadTicket {
        state.withLock { state in
            state.issued += 1
            return LoadTicket(number: state.issued)
        }
    }

    /// Installs `catalog` unless a load that started later is already in place; true when installed.
    @discardableResult
    public func install(_ catalog: Catalog, loadedBy ticket: LoadTicket) -> Bool {
        state.withLock { state in
            guard ticket.number > state.installed else { return false }
            state.installed = ticket.number
            state.catalog = catalog
            return true
        }
    }
}
