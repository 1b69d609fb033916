import NIOCore
import NIOHTTPTypes

/// Delays a connection's close until the response bytes already written have left the process.
///
/// On graceful shutdown Hummingbird closes a connection as soon as the last part of its response
/// is written into the pipeline; with a large streamed body still queued behind a slow socket,
/// that close would drop the tail of the response. This handler sits below Hummingbird's
/// connection handler and lets a full close through only once every write has completed.
final class FlushBeforeCloseHandler: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private var outstandingWrites = 0
    private var deferredClose: (mode: CloseMode, promise: EventLoopPromise<Void>?)?

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let promise = promise ?? context.eventLoop.makePromise()
        outstandingWrites += 1
        let handler = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        promise.futureResult.whenComplete { _ in
            let (handler, context) = handler.value
            handler.outstandingWrites -= 1
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
