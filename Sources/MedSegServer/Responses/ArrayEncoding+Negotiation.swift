import Hummingbird
import HummingbirdCore
import MedSegData

/// Content negotiation for array routes: `?format=` or `Accept` picks one of the encodings the
/// route can send (API.md's "Tensor responses" table).
extension ArrayEncoding {
    /// `?format=` wins; otherwise the best `Accept` entry this route can send; otherwise the
    /// route's default. Asking for an encoding the route cannot send is a 400.
    static func negotiate(_ request: Request, format: String?, allowed: [ArrayEncoding]) throws(APIError) -> ArrayEncoding {
        if let format {
            guard let encoding = ArrayEncoding(rawValue: format) else {
                throw APIError.badRequest("format must be npy, raw or npz, not '\(format.prefix(40))'")
            }
            guard allowed.contains(encoding) else { throw unsupported(encoding, allowed) }
            return encoding
        }
        guard let accept = request.headers[.accept] else { return allowed[0] }
        var best: (encoding: ArrayEncoding, quality: Double)?
        var refused: ArrayEncoding?
        for range in accept.split(separator: ",") {
            let parts = range.split(separator: ";").map { $0.trimmingSpaces }
            guard let type = parts.first else { continue }
            var quality = 1.0
            for parameter in parts.dropFirst() where parameter.hasPrefix("q=") {
                quality = Double(parameter.dropFirst(2)) ?? 1.0
            }
            guard quality > 0 else { continue }
            let candidate: ArrayEncoding?
            if type == "*/*" || type == "application/*" {
                candidate = allowed[0]
            } else if let encoding = ArrayEncoding(mediaType: type) {
                guard allowed.contains(encoding) else {
                    refused = encoding
                    continue
                }
                candidate = encoding
            } else {
                candidate = nil
            }
            if let candidate, quality > (best?.quality ?? 0) { best = (candidate, quality) }
        }
        if let best { return best.encoding }
        if let refused { throw unsupported(refused, allowed) }
        return allowed[0]
    }

    private static func unsupported(_ encoding: ArrayEncoding, _ allowed: [ArrayEncoding]) -> APIError {
        let options = allowed.map(\.rawValue).joined(separator: " or ")
        return APIError.badRequest("this route sends \(options), not \(encoding.rawValue)")
    }
}

extension Substring {
    var trimmingSpaces: Substring {
        var slice = self
        while slice.first == " " || slice.first == "\t" { slice.removeFirst() }
        while slice.last == " " || slice.last == "\t" { slice.removeLast() }
        return slice
    }
}
