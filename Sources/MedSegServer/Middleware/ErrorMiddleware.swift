import HTTPTypes
public import Hummingbird
import Logging
import MedSegData
import NIOHTTP1

/// Makes every error a JSON error response of the contract: Hummingbird's own (unknown route,
/// body too large) and NIO's HTTP parser's (a malformed body: the client's fault, 400) are
/// translated, anything unexpected becomes a logged 500 with no detail sent out. Errors become
/// responses here, so the middleware around it (access log, metrics) sees every status.
public struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    public init() {}

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let apiError: APIError
        do {
            return try await next(request, context)
        } catch let error as APIError {
            apiError = error
        } catch let error as TensorError {
            apiError = APIError(error)
            if error.kind == .unprocessable || error.kind == .unavailable {
                // Data on disk that cannot be served (or checked, now): the operator needs the file, the client does not.
                context.logger.warning(
                    "data cannot be served",
                    metadata: [
                        "file": "\(error.file ?? "unknown")", "error": "\(error.message)", "path": "\(request.uri.path.prefix(200))",
                    ])
            }
        } catch let error as HTTPParserError {
            // The body's framing broke (a bad chunk size, a body cut short), found as the route
            // reads it. The connection cannot carry another request after this one.
            apiError = APIError(.badRequest, "malformed request: \(String(reflecting: error))", headers: [.connection: "close"])
        } catch is CancellationError {
            // The client went while its request waited (for memory): nobody reads the answer.
            // A half-closed connection (FIN) counts as gone: HTTP clients do not half-close and
            // still read, but one that did is told why, and may retry.
            context.logger.debug("request abandoned: the client left", metadata: ["path": "\(request.uri.path.prefix(200))"])
            apiError = APIError(
                .notReady, "the request was dropped while it waited for memory: its connection was closed (or half-closed); retry",
                headers: [.retryAfter: "1"])
        } catch let error as any HTTPResponseError {
            apiError = Self.translate(error, request: request)
        } catch {
            context.logger.error("internal error", metadata: ["error": "\(String(reflecting: error))", "path": "\(request.uri.path)"])
            apiError = APIError(.internalError, "internal error; the server log has the details")
        }
        return try apiError.response(from: request, context: context)
    }

    static func translate(_ error: any HTTPResponseError, request: Request) -> APIError {
        switch error.status {
        case .notFound:
            return APIError(.notFound, "no route \(request.method.rawValue) \(request.uri.path.prefix(200))")
        case .contentTooLarge:
            return APIError(.tooLarge, "request body is too large")
        case .badRequest:
            return APIError(.badRequest, (error as? HTTPError)?.body ?? "bad request")
        case .unauthorized:
            return APIError(.unauthorized, "a valid bearer token is required")
        case .methodNotAllowed:
            return APIError(.methodNotAllowed, "method \(request.method.rawValue) is not allowed here")
        case .serviceUnavailable:
            return APIError(.notReady, "not ready")
        default:
            return APIError(error.status.code >= 500 ? .internalError : .badRequest, error.status.reasonPhrase)
        }
    }
}
