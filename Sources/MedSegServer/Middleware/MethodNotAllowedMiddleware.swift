import HTTPTypes
public import Hummingbird

/// Turns the router's "no route" into 405 (with `Allow`) when the path exists but the method is
/// one the router was never told about (`QUERY`, custom methods): only the path decides 404.
/// Added after the routes, it wraps only the router's not-found responder.
public struct MethodNotAllowedMiddleware<Context: RequestContext>: RouterMiddleware {
    let routes: RouteMethods

    public init(routes: RouteMethods) {
        self.routes = routes
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound {
            guard let methods = routes.allowedMethods(for: request.uri.path) else { throw error }
            let allow = methods.map(\.rawValue).joined(separator: ", ")
            throw APIError(.methodNotAllowed, "\(request.method.rawValue) is not allowed here; allowed: \(allow)", headers: [.allow: allow])
        }
    }
}
