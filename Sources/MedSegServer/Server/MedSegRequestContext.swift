public import Hummingbird
public import NIOCore

/// The per-request context of every medsegd route.
public struct MedSegRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The client's connection: a request waiting for memory gives up its place when it goes.
    public let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.channel = source.channel
    }
}

extension RequestContext {
    /// Whether the client is still there, from its connection's `WriteProgressHandler` (nil in
    /// tests through the router, whose contexts have no such connection). A connection whose
    /// handlers are gone (it was reset and closed) has gone.
    var connectionWatch: ConnectionWatch? {
        get async {
            guard let channel = (self as? MedSegRequestContext)?.channel else { return nil }
            let watch = try? await channel.eventLoop.submit {
                try channel.pipeline.syncOperations.handler(type: WriteProgressHandler.self).watch
            }.get()
            return watch ?? .gone
        }
    }
}

extension ResponseMemory {
    /// `bytes` for a request of `context`: at once when free, else waiting (and giving up when
    /// its client goes; the connection is looked up only then).
    func reserve(_ bytes: Int, for context: some RequestContext) async throws -> Reservation {
        if let now = tryReserve(bytes) { return now }
        return try await reserve(bytes, watching: await context.connectionWatch)
    }
}
