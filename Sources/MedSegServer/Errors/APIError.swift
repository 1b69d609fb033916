public import HTTPTypes
public import Hummingbird
import MedSegData
import NIOCore

/// An error as the API contract sends it: `{"error": {"code": ..., "message": ...}}`.
public struct APIError: HTTPResponseError, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        case badRequest = "bad_request"
        case unauthorized
        case notFound = "not_found"
        case methodNotAllowed = "method_not_allowed"
        case tooLarge = "too_large"
        case unprocessable
        case notReady = "not_ready"
        case internalError = "internal"

        var status: HTTPResponse.Status {
            switch self {
            case .badRequest: .badRequest
            case .unauthorized: .unauthorized
            case .notFound: .notFound
            case .methodNotAllowed: .methodNotAllowed
            case .tooLarge: .contentTooLarge
            case .unprocessable: .unprocessableContent
            case .notReady: .serviceUnavailable
            case .internalError: .internalServerError
            }
        }
    }

    public var code: Code
    public var message: String
    /// Extra response headers (`Allow` on 405).
    public var headers: HTTPFields
    /// Whether the body may be pretty-printed when `?pretty` asks for it: not when the route
    /// refused `pretty` itself.
    var honoursPretty = true

    public init(_ code: Code, _ message: String, headers: HTTPFields = [:]) {
        self.code = code
        self.message = message
        self.headers = headers
    }

    public var status: HTTPResponse.Status { code.status }
    public var description: String { "\(code.rawValue): \(message)" }

    public static func badRequest(_ message: String) -> APIError { APIError(.badRequest, message) }
    public static func notFound(_ message: String) -> APIError { APIError(.notFound, message) }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let body = ErrorBody(error: .init(code: code.rawValue, message: message))
        var response = JSONResponse.make(body, pretty: honoursPretty && request.wantsPrettyJSON, status: status)
        response.headers.append(contentsOf: headers)
        return response
    }
}
