import HTTPTypes
import Hummingbird
import MedSegData
import NIOCore

extension Request {
    /// The whole body as bytes, or a 413 that names the limit and the key that sets it.
    func collectBody(limit: ByteSize) async throws -> [UInt8] {
        var body: ByteBuffer
        do {
            body = try await self.body.collect(upTo: limit.bytes)
        } catch let error as any HTTPResponseError where error.status == .contentTooLarge {
            throw APIError(
                .tooLarge, "the request body is over max_body_bytes (\(limit)); send a smaller body (fewer indices) or raise server.max_body_bytes")
        }
        return body.readBytes(length: body.readableBytes) ?? []
    }
}
