import HTTPTypes
import MedSegData

extension APIError {
    /// A core tensor error as the contract answers it.
    init(_ error: TensorError) {
        switch error.kind {
        case .invalidRequest: self.init(.badRequest, error.message)
        case .notFound: self.init(.notFound, error.message)
        case .unprocessable: self.init(.unprocessable, error.message)
        case .tooLarge: self.init(.tooLarge, error.message)
        // Nothing is wrong with the request or the data (a file's safety check could not be made).
        case .unavailable: self.init(.notReady, error.message, headers: [.retryAfter: "5"])
        }
    }
}
