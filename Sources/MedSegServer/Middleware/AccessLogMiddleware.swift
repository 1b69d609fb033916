import HTTPTypes
public import Hummingbird
import Logging
import MedSegData
import Metrics

/// One info line per request (method, route, status, bytes, duration), and the bytes-sent counter.
public struct AccessLogMiddleware<Context: RequestContext>: RouterMiddleware {
    let settings: LiveSettings

    public init(settings: LiveSettings) {
        self.settings = settings
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let started = ContinuousClock.now
        let response = try await next(request, context)
        let route = context.endpointPath ?? "unmatched"
        let bytes = request.method == .head ? 0 : (response.body.contentLength ?? Int(response.headers[.contentLength] ?? "") ?? 0)
        Counter(label: "medsegd_response_bytes", dimensions: [("route", route)]).increment(by: bytes)
        if settings.current.accessLog {
            let elapsed = ContinuousClock.now - started
            let milliseconds = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
            context.logger.info("request", metadata: [
                "method": "\(request.method.rawValue)", "route": "\(route)", "path": "\(request.uri.path.prefix(200))",
                "status": "\(response.status.code)", "bytes": "\(bytes)", "ms": "\(Double(Int(milliseconds * 100)) / 100)",
            ])
        }
        return response
    }
}
