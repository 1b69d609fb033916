import HTTPTypes
public import Hummingbird

/// Requires `Authorization: Bearer <token>` on `/v1` and `/metrics` when tokens are configured;
/// `/healthz`, `/readyz` and `/openapi.yaml` stay open for probes and tools.
public struct BearerAuthMiddleware<Context: RequestContext>: RouterMiddleware {
    let tokens: TokenStore

    public init(tokens: TokenStore) {
        self.tokens = tokens
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let path = request.uri.path
        guard tokens.isEnabled, path.hasPrefix("/v1/") || path == "/v1" || path == "/metrics" else {
            return try await next(request, context)
        }
        let header = request.headers[.authorization] ?? ""
        let prefix = "bearer "
        guard header.count > prefix.count, header.prefix(prefix.count).lowercased() == prefix,
              tokens.accepts(header.utf8.dropFirst(prefix.count)) else {
            throw APIError(.unauthorized, "a valid bearer token is required (Authorization: Bearer <token>)",
                           headers: [.wwwAuthenticate: "Bearer realm=\"medsegd\""])
        }
        return try await next(request, context)
    }
}
