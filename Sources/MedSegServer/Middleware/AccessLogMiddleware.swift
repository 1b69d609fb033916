import HTTPTypes
public import Hummingbird
import Logging
import MedSegData
import Metrics
import Synchronization

/// One info line per request (method, route, status, bytes, duration) and the bytes-sent counter,
/// both taken when the body has been written: a streamed volume is logged with the bytes that
/// went out and the time it took to send them, not when its handler returned.
public struct AccessLogMiddleware<Context: RequestContext>: RouterMiddleware {
    let settings: LiveSettings

    public init(settings: LiveSettings) {
        self.settings = settings
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let started = ContinuousClock.now
        var response = try await next(request, context)
        let route = context.endpointPath ?? "unmatched"
        let (method, status, path) = (request.method.rawValue, response.status.code, String(request.uri.path.prefix(200)))
        let logger = context.logger
        let enabled = settings.current.accessLog
        let body = response.body
        let sent = SentBytes()
        response.body = ResponseBody(contentLength: body.contentLength) { writer in
            func record(_ outcome: String) {
                let bytes = sent.count.load(ordering: .relaxed)
                Counter(label: "medsegd_response_bytes", dimensions: [("route", route)]).increment(by: bytes)
                guard enabled else { return }
                let elapsed = ContinuousClock.now - started
                let milliseconds = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
                logger.info(
                    "request",
                    metadata: [
                        "method": "\(method)", "route": "\(route)", "path": "\(path)", "status": "\(status)", "bytes": "\(bytes)",
                        "ms": "\(Double(Int(milliseconds * 100)) / 100)", "body": "\(outcome)",
                    ])
            }
            do {
                try await body.write(
                    writer.map { buffer in
                        sent.count.add(buffer.readableBytes, ordering: .relaxed)
                        return buffer
                    })
                record("complete")
            } catch {
                // The client left, a stalled response was cut, or a file broke mid-stream.
                record("aborted")
                throw error
            }
        }
        return response
    }
}

/// Bytes handed to the connection for one response body.
private final class SentBytes: Sendable {
    let count = Atomic<Int>(0)
}
