public import Hummingbird
import NIOCore

/// The per-request context of every medsegd route.
public struct MedSegRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
    }
}
