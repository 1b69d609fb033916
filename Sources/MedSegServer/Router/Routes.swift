public import HTTPTypes
public import Hummingbird
import Synchronization

/// Hummingbird's router, as medsegd registers on it: every route goes through `on(_:method:responder:)`
/// here (directly or from a `group`, which forwards its full paths), so this one place
/// - registers it with Hummingbird's router,
/// - gives every `GET` its `HEAD` (the GET's headers and `Content-Length`, no body; Hummingbird's
///   own would announce a length of 0 for streamed bodies),
/// - and records the methods of every path, from which `MethodsMiddleware` answers 405.
public struct Routes<Context: RequestContext>: RouterMethods {
    let router: Router<Context>
    let methods: RouteMethods

    public init(router: Router<Context>) {
        self.router = router
        self.methods = RouteMethods()
        router.add(middleware: MethodsMiddleware<Context>(routes: methods))
    }

    @discardableResult
    public func on<Responder: HTTPResponder>(_ path: RouterPath, method: HTTPRequest.Method, responder: Responder) -> Self
    where Responder.Context == Context {
        router.on(path, method: method, responder: responder)
        methods.add(path, method)
        if method == .get {
            router.on(path, method: .head, responder: HeadResponder(get: responder))
            methods.add(path, .head)
        }
        return self
    }

    @discardableResult
    public func add(middleware: any MiddlewareProtocol<Request, Response, Context>) -> Self {
        router.add(middleware: middleware)
        return self
    }
}

/// A GET's response without its body, keeping its length (none when the GET streams unknown
/// bytes). The handler sees the HEAD method, so tensor routes skip reading what is not sent.
struct HeadResponder<Get: HTTPResponder>: HTTPResponder {
    let get: Get

    func respond(to request: Request, context: Get.Context) async throws -> Response {
        let response = try await get.respond(to: request, context: context)
        return Response(
            status: response.status, headers: response.headers,
            body: ResponseBody(contentLength: response.body.contentLength) { writer in try await writer.finish(nil) })
    }
}

/// The methods registered per path, matched the way Hummingbird's router matches (its own
/// `RouterPath` elements): filled while routes are registered, read by every 404.
public final class RouteMethods: Sendable {
    private let routes = Mutex<[(path: RouterPath, methods: [HTTPRequest.Method])]>([])

    func add(_ path: RouterPath, _ method: HTTPRequest.Method) {
        routes.withLock { routes in
            if let index = routes.firstIndex(where: { $0.path == path }) {
                routes[index].methods.append(method)
            } else {
                routes.append((path, [method]))
            }
        }
    }

    /// The methods served on the route matching `path` (empty segments ignored, as the router
    /// ignores them), or nil when no route matches.
    func allowed(for path: String) -> [HTTPRequest.Method]? {
        let segments = path.split(separator: "/", omittingEmptySubsequences: true)
        return routes.withLock { routes in
            routes.first { route in
                route.path.components.count == segments.count && zip(route.path.components, segments).allSatisfy { $0 ~= $1 }
            }?.methods
        }
    }
}

/// Turns the router's "no route" into 405 with `Allow` when the path exists but not for this
/// method (including methods nobody registers, such as `QUERY`): only the path decides 404.
struct MethodsMiddleware<Context: RequestContext>: RouterMiddleware {
    let routes: RouteMethods

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound {
            // Handlers answer 404 with APIError: an HTTPError 404 is the router's "no route".
            guard let methods = routes.allowed(for: request.uri.path), !methods.contains(request.method) else { throw error }
            let allow = methods.map(\.rawValue).joined(separator: ", ")
            throw APIError(.methodNotAllowed, "\(request.method.rawValue) is not allowed here; allowed: \(allow)", headers: [.allow: allow])
        }
    }
}
