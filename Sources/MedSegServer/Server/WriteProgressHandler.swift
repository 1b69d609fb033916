import NIOCore
import NIOHTTPTypes

/// Watches a connection's response writes, for two jobs that both need to know which writes
/// have left the process:
///
/// - **Flush before close.** On graceful shutdown Hummingbird closes a connection as soon as the
///   last part of its response is written into the pipeline; with a large streamed body still
///   queued behind a slow socket, that close would drop the tail of the response. A full close
///   is let through only once every write has completed.
/// - **Memory.** Body bytes count against `max_inflight_bytes` until they have left.
/// - **Clients that left.** A FIN (the connection stays half open) or a closed connection marks
///   `watch`, so requests still waiting for memory give up their place.
/// - **Stalled clients.** Hummingbird's idle timer does not run while a response is in progress,
///   so a client that asks for a volume and reads nothing would hold the connection, its buffers
///   and its share of the blocking pool forever. When writes are outstanding and none has
///   completed for `stallTimeout`, the connection is closed: the writer fails and the response
///   releases everything it held.
final class WriteProgressHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    /// Marked when the client goes; read by requests from any thread.
    let watch = ConnectionWatch()

    private let stallTimeout: TimeAmount
    /// Counts body bytes from the moment they are written here until they leave (or fail).
    private let memory: ResponseMemory?
    private var outstandingWrites = 0
    private var lastProgress = NIODeadline.now()
    private var deferredClose: (mode: CloseMode, promise: EventLoopPromise<Void>?)?
    private var watchdog: RepeatedTask?

    init(stallTimeout: TimeAmount, memory: ResponseMemory?) {
        self.stallTimeout = stallTimeout
        self.memory = memory
    }

    func handlerAdded(context: ChannelHandlerContext) {
        guard stallTimeout > .zero else { return }  // idle_timeout 0: no timeout
        // Checked a few times per timeout: a stall is cut between 1 and 1.25 timeouts after it began.
        let period = TimeAmount.nanoseconds(max(10_000_000, stallTimeout.nanoseconds / 4))
        let handler = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        watchdog = context.eventLoop.scheduleRepeatedTask(initialDelay: period, delay: period) { _ in
            let (handler, context) = handler.value
            handler.checkProgress(context: context)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        watchdog?.cancel()
        watchdog = nil
        watch.markGone()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed { watch.markGone() }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        watch.markGone()
        context.fireChannelInactive()
    }

    private func checkProgress(context: ChannelHandlerContext) {
        guard outstandingWrites > 0, NIODeadline.now() - lastProgress >= stallTimeout else { return }
        watchdog?.cancel()
        watchdog = nil
        deferredClose = nil
        // Past this handler's own close(): the stalled writes are not waited for.
        context.close(mode: .all, promise: nil)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let promise = promise ?? context.eventLoop.makePromise()
        if outstandingWrites == 0 { lastProgress = .now() }
        outstandingWrites += 1
        let bytes: Int
        if case .body(let buffer) = unwrapOutboundIn(data) { bytes = buffer.readableBytes } else { bytes = 0 }
        if bytes > 0 { memory?.queued(bytes) }
        let handler = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        promise.futureResult.whenComplete { _ in
            let (handler, context) = handler.value
            if bytes > 0 { handler.memory?.sent(bytes) }
            handler.outstandingWrites -= 1
            handler.lastProgress = .now()
            if handler.outstandingWrites == 0, let close = handler.deferredClose {
                handler.deferredClose = nil
                context.close(mode: close.mode, promise: close.promise)
            }
        }
        context.write(data, promise: promise)
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        guard mode == .all, outstandingWrites > 0 else {
            context.close(mode: mode, promise: promise)
            return
        }
        deferredClose = (mode, promise)
        context.flush()
    }
}
