import HTTPTypes
public import Hummingbird

/// Requires `Authorization: Bearer <token>` on every route when tokens are configured, except an
/// explicit allow-list for probes and tools: `/healthz`, `/readyz`, `/openapi.yaml`, and the
/// browser UI's own files (`/`, `/ui/app.js`, `/ui/style.css`: no data; the page asks for a token).
///
/// Deny by default, decided on the path as the router reads it: the router ignores empty
/// segments (`//v1/datasets` routes like `/v1/datasets`), so the path is compared segment by
/// segment with empty ones dropped, and anything that is not exactly an open route needs a token.
public struct BearerAuthMiddleware<Context: RequestContext>: RouterMiddleware {
    let tokens: TokenStore

    /// Routes open without a token, as path segments.
    static var openRoutes: [[Substring]] { [["healthz"], ["readyz"], ["openapi.yaml"], [], ["ui", "app.js"], ["ui", "style.css"]] }

    public init(tokens: TokenStore) {
        self.tokens = tokens
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard tokens.isEnabled else { return try await next(request, context) }
        let segments = request.uri.path.split(separator: "/", omittingEmptySubsequences: true)
        if Self.openRoutes.contains(segments) { return try await next(request, context) }
        let header = request.headers[.authorization] ?? ""
        let prefix = "bearer "
        guard header.utf8.count > prefix.utf8.count, header.prefix(prefix.count).lowercased() == prefix,
            tokens.accepts(header.utf8.dropFirst(prefix.utf8.count))
        else {
            throw APIError(
                .unauthorized, "a valid bearer token is required (Authorization: Bearer <token>)",
                headers: [.wwwAuthenticate: "Bearer realm=\"medsegd\""])
        }
        return try await next(request, context)
    }
}
