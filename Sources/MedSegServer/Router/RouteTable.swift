public import HTTPTypes
public import Hummingbird

/// Registers routes and, for every path, answers the methods it does not serve with 405 and an
/// `Allow` header (Hummingbird's router alone would say 404). `HEAD` comes with every `GET`.
public final class RouteTable<Context: RequestContext> {
    public typealias Handler = @Sendable (Request, Context) async throws -> Response

    let router: Router<Context>
    private var allowed: [(path: String, methods: [HTTPRequest.Method])] = []

    public init(router: Router<Context>) {
        self.router = router
    }

    public func get(_ path: String, use handler: @escaping Handler) {
        add(path, .get, handler)
        // Hummingbird's generated HEAD would announce `Content-Length: 0` for streamed bodies;
        // this one keeps the GET's length, or none when the GET streams.
        router.on(RouterPath(path), method: .head) { request, context -> Response in
            let response = try await handler(request, context)
            return Response(
                status: response.status, headers: response.headers,
                body: ResponseBody(contentLength: response.body.contentLength) { writer in try await writer.finish(nil) })
        }
    }

    public func post(_ path: String, use handler: @escaping Handler) {
        add(path, .post, handler)
    }

    private func add(_ path: String, _ method: HTTPRequest.Method, _ handler: @escaping Handler) {
        router.on(RouterPath(path), method: method, use: handler)
        if let index = allowed.firstIndex(where: { $0.path == path }) {
            allowed[index].methods.append(method)
        } else {
            allowed.append((path, [method]))
        }
    }

    private static var everyMethod: [HTTPRequest.Method] {
        [.get, .head, .post, .put, .delete, .patch, .options, .trace]
    }

    /// Every registered path with its methods: a snapshot for the not-found handler.
    public var methods: RouteMethods { RouteMethods(routes: allowed) }

    /// Adds the 405 answers; call once after the last route.
    public func finish() {
        for (path, methods) in allowed {
            let served = methods.contains(.get) ? methods + [.head] : methods
            let allowHeader = served.map(\.rawValue).joined(separator: ", ")
            for method in Self.everyMethod where !served.contains(method) {
                router.on(RouterPath(path), method: method) { request, _ -> Response in
                    throw APIError(
                        .methodNotAllowed, "\(request.method.rawValue) is not allowed on \(path); allowed: \(allowHeader)",
                        headers: [.allow: allowHeader])
                }
            }
        }
    }
}

/// The methods served per route pattern (`{name}` matches any one segment).
public struct RouteMethods: Sendable {
    let routes: [(path: String, methods: [HTTPRequest.Method])]

    /// The methods served on the route matching `path`, or nil when no route matches.
    public func allowedMethods(for path: String) -> [HTTPRequest.Method]? {
        let segments = path.split(separator: "/", omittingEmptySubsequences: true)
        for (pattern, methods) in routes {
            let parts = pattern.split(separator: "/", omittingEmptySubsequences: true)
            guard parts.count == segments.count else { continue }
            if zip(parts, segments).allSatisfy({ $0.hasPrefix("{") || $0 == $1 }) {
                return methods.contains(.get) ? methods + [.head] : methods
            }
        }
        return nil
    }
}
