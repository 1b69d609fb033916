import HTTPTypes
public import Hummingbird
import Logging
import MedSegData
import Metrics
import Synchronization

/// One info line per request (method, route, status, bytes, duration) and the bytes counter, both
/// taken when the body has been written to the connection: a streamed volume is logged with the
/// bytes written and the time it took, not when its handler returned. Bytes written are queued
/// for the client, not proof of receipt: a client cut off later may not have read them all.
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
        // A HEAD response's body is never sent, whatever the handler (or an error) put in it.
        let isHead = request.method == .head
        let logger = context.logger
        let enabled = settings.current.accessLog
        let body = response.body
        let sent = SentBytes()
        response.body = ResponseBody(contentLength: body.contentLength) { writer in
            func record(_ outcome: String, reason: String? = nil) {
                let bytes = isHead ? 0 : sent.count.load(ordering: .relaxed)
                Counter(label: "medsegd_response_bytes", dimensions: [("route", route)]).increment(by: bytes)
                guard enabled else { return }
                let elapsed = ContinuousClock.now - started
                let milliseconds = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
                var metadata: Logger.Metadata = [
                    "method": "\(method)", "route": "\(route)", "path": "\(path)", "status": "\(status)", "bytes": "\(bytes)",
                    "ms": "\(Double(Int(milliseconds * 100)) / 100)", "body": "\(outcome)",
                ]
                if let reason { metadata["reason"] = "\(reason)" }
                logger.info("request", metadata: metadata)
            }
            do {
                try await body.write(
                    writer.map { buffer in
                        sent.count.add(buffer.readableBytes, ordering: .relaxed)
                        return buffer
                    })
                record("complete")
            } catch {
                // The client left, a stalled response was cut, or the data broke mid-stream (a file
                // changed, an overlap in a streamed label map: the reason is logged, since the
                // client only sees the body end early).
                record("aborted", reason: (error as? TensorError)?.message)
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
