/// An `ArrayRequest` as files and arrays: the one place that maps what is asked to what is read.
extension TensorReader {
    /// The files whose identities make up the request's cache key and ETag (none for batches,
    /// which are not cached).
    public func files(for request: ArrayRequest) throws(TensorError) -> [String] {
        switch request.target {
        case .item(let index): try files(ofItem: index)
        case .scan(let id, let aug): try files(ofScan: id, aug: aug)
        case .batch: []
        }
    }

    /// The response's arrays, opened and checked before any byte is sent. Sizes are checked
    /// against `byteLimit` as arrays are opened, so a batch past it stops at the first item over.
    public func arrays(for request: ArrayRequest, byteLimit: Int) throws(TensorError) -> [NamedArray] {
        var opened: [any TensorSource] = []
        var bytes = 0
        /// Opens one source and counts it against the limit.
        func open(_ make: () throws(TensorError) -> any TensorSource) throws(TensorError) -> any TensorSource {
            let source = try make()
            opened.append(source)
            let size = max(source.layout.byteCount, source.readByteCount)
            let (total, overflow) = bytes.addingReportingOverflow(size)
            guard !overflow, total <= byteLimit else {
                throw Self.overLimit(overflow ? Int.max : total, byteLimit, reading: source.readByteCount > source.layout.byteCount)
            }
            bytes = total
            return source
        }
        do throws(TensorError) {
            switch (request.target, request.arrays) {
            case (.item(let index), .image):
                return [
                    NamedArray(
                        name: "image", sources: [try open { () throws(TensorError) in try image(item: index, options: request.options) }],
                        stacked: false)
                ]
            case (.item(let index), .mask):
                return [
                    NamedArray(
                        name: "mask", sources: [try open { () throws(TensorError) in try mask(item: index, options: request.options) }],
                        stacked: false)
                ]
            case (.item(let index), .pair):
                let imageArray = NamedArray(
                    name: "image", sources: [try open { () throws(TensorError) in try image(item: index, options: request.options) }], stacked: false)
                guard try isLabeled(index) else { return [imageArray] }
                return [
                    imageArray,
                    NamedArray(
                        name: "mask", sources: [try open { () throws(TensorError) in try mask(item: index, options: request.maskOptions) }],
                        stacked: false),
                ]
            case (.scan(let id, let aug), .image):
                return [
                    NamedArray(
                        name: "image", sources: [try open { () throws(TensorError) in try scanImage(id, aug: aug, options: request.options) }],
                        stacked: false)
                ]
            case (.scan(let id, let aug), .mask):
                return [
                    NamedArray(
                        name: "mask", sources: [try open { () throws(TensorError) in try scanMask(id, aug: aug, options: request.options) }],
                        stacked: false)
                ]
            case (.scan, .pair):
                throw TensorError(.invalidRequest, "scans are sent as image or mask, not as a pair")
            case (.batch(let indices), _):
                for index in indices {
                    guard try isLabeled(index) else { throw TensorError(.unprocessable, "item \(index) of the batch is unlabeled: it has no mask") }
                }
                var images: [any TensorSource] = []
                var masks: [any TensorSource] = []
                for index in indices {
                    images.append(try open { () throws(TensorError) in try image(item: index, options: request.options) })
                    masks.append(try open { () throws(TensorError) in try mask(item: index, options: request.maskOptions) })
                }
                try Self.checkOneLayout(images, indices, what: "image")
                try Self.checkOneLayout(masks, indices, what: "mask")
                return [NamedArray(name: "image", sources: images, stacked: true), NamedArray(name: "mask", sources: masks, stacked: true)]
            }
        } catch {
            for source in opened { source.close() }
            throw error
        }
    }

    /// A 413 naming the limit. `reading`: the bytes counted are those read (a collated mask or
    /// label map reads every stored channel), not the response's.
    public static func overLimit(_ bytes: Int, _ limit: Int, reading: Bool = false) -> TensorError {
        let size = bytes == Int.max ? "more bytes than can be counted" : "\(bytes) bytes"
        let subject = reading ? "reading it would take \(size) (a mask is read with every stored channel)" : "the response would be \(size)"
        return TensorError(.tooLarge, "\(subject), over max_response_bytes (\(ByteSize(bytes: limit))); ask for a region or fewer items")
    }

    private static func checkOneLayout(_ sources: [any TensorSource], _ indices: [Int], what: String) throws(TensorError) {
        guard let first = sources.first?.layout, let position = sources.firstIndex(where: { $0.layout != first }) else { return }
        let other = sources[position].layout
        throw TensorError(
            .unprocessable,
            "items \(indices[0]) and \(indices[position]) differ in \(what) \(first.shape == other.shape ? "dtype" : "shape"): \(first) vs \(other); a batch needs one shape (use region=)"
        )
    }
}
