import HDF5  // DType only: the server never calls the HDF5 library.
import Hummingbird
import HummingbirdCore
import MedSegData

/// Reads `TensorOptions` from a query string or a batch body; every bad value is a 400 naming it.
enum TensorQuery {
    /// The query parameters each kind of array route knows; anything else is a 400.
    static let imageParameters = ["region", "dtype", "format"]
    static let maskParameters = ["region", "categories", "background", "format"]
    static let pairParameters = ["region", "categories", "background", "dtype", "format"]

    static func options(_ query: QueryParameters) throws(APIError) -> TensorOptions {
        try options(
            region: query["region"],
            categories: try query["categories"].map { (text) throws(APIError) in try categories(text) },
            background: query["background"],
            dtype: query["dtype"])
    }

    static func options(region: String?, categories: CategorySelection?, background: String?, dtype: String?) throws(APIError) -> TensorOptions {
        var options = TensorOptions()
        if let region {
            do {
                options.region = try Region(parsing: region)
            } catch {
                throw APIError.badRequest("region: \(error.message)")
            }
        }
        options.categories = categories
        if let background {
            guard let channel = BackgroundChannel(rawValue: background) else {
                throw APIError.badRequest("background must be none, first or last, not '\(background.prefix(40))'")
            }
            options.background = channel
        }
        if let dtype {
            guard let type = DType(numpyName: dtype) else {
                throw APIError.badRequest("dtype must be one of bool, uint8, int8, uint16, int16, uint32, int32, uint64, int64, float16, float32, float64; not '\(dtype.prefix(40))'")
            }
            options.dtype = type
        }
        return options
    }

    static func categories(_ text: String) throws(APIError) -> CategorySelection {
        do {
            return try CategorySelection(json: text)
        } catch {
            throw APIError.badRequest(error.message)
        }
    }

    static func categories(_ value: JSONValue) throws(APIError) -> CategorySelection {
        do {
            return try CategorySelection(json: value)
        } catch {
            throw APIError.badRequest(error.message)
        }
    }
}

extension APIError {
    /// A core tensor error as the contract answers it.
    init(_ error: TensorError) {
        switch error.kind {
        case .invalidRequest: self.init(.badRequest, error.message)
        case .notFound: self.init(.notFound, error.message)
        case .unprocessable: self.init(.unprocessable, error.message)
        case .tooLarge: self.init(.tooLarge, error.message)
        }
    }
}
