public import Hummingbird
public import NIOCore

/// The per-request context of every medsegd route.
public struct MedSegRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The client's connection: a request waiting for memory gives up its place when it closes.
    public let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.channel = source.channel
    }
}

extension RequestContext {
    /// The client's connection, when the context carries it (the server's own does).
    var clientChannel: (any Channel)? { (self as? MedSegRequestContext)?.channel }
}
