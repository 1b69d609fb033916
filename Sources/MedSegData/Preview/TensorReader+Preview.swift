internal import HDF5

extension TensorReader {
    /// What a preview shows: an item (a 2D slice, or a 3D item's volume) or a scan's volume.
    public enum PreviewTarget: Sendable {
        case item(Int)
        case scan(id: String, aug: Int)
    }

    /// The most pixels a preview slice may have: its working arrays take ~40 bytes a pixel.
    public static let maxPreviewPixels = 16 << 20

    /// The pixels of the slice a preview would draw, checked against `maxPreviewPixels`; only
    /// opens the image.
    public func previewPixels(_ target: PreviewTarget, request: PreviewRequest) throws(TensorError) -> Int {
        try previewShape(target, request: request).pixels
    }

    /// The image's shape, checked: three axes, a slice with pixels along `axis`, not too many.
    private func previewShape(_ target: PreviewTarget, request: PreviewRequest) throws(TensorError) -> (shape: [Int], pixels: Int) {
        let whole = try previewImage(target, options: TensorOptions())
        let shape = whole.layout.shape
        whole.close()
        guard shape.count == 3 else {
            throw TensorError(.unprocessable, "a preview draws a slice of a 3-axis volume; this image has shape \(shape)")
        }
        let pixels = shape.enumerated().filter { $0.offset != request.axis }.map(\.element).checkedProduct ?? Int.max
        guard pixels > 0, shape[request.axis] > 0 else {
            throw TensorError(.unprocessable, "the image has shape \(shape): no slice along axis \(request.axis) has a pixel to draw")
        }
        guard pixels <= Self.maxPreviewPixels else {
            throw TensorError(
                .tooLarge, "a slice of \(pixels) pixels is too large to preview (at most \(Self.maxPreviewPixels)); ask for another axis")
        }
        return (shape, pixels)
    }

    /// The slice a preview draws, read as two regions: the image (`h x w`) and, when labeled,
    /// the collated mask (`h x w x C'`), with one colour per class and the slice index used.
    public func previewSlice(
        _ target: PreviewTarget, request: PreviewRequest, byteLimit: Int
    ) throws(TensorError) -> (image: Tensor, mask: Tensor?, colors: [[UInt8]], slice: Int, opened: [String: FileIdentity]) {
        let (shape, pixels) = try previewShape(target, request: request)
        let length = shape[request.axis]
        let slice = request.slice ?? length / 2
        guard (-length..<length).contains(slice) else {
            throw TensorError(
                .invalidRequest, "slice \(slice) is out of range for axis \(request.axis) (length \(length); negative counts from the end)")
        }
        let classCount = (request.categories?.ids ?? entry.metadata.categoryIDs).count
        // Drawing visits every pixel once per class.
        let work = pixels.multipliedReportingOverflow(by: max(1, classCount))
        guard !work.overflow, work.partialValue <= Self.maxPreviewPixels * 16 else {
            throw TensorError(
                .tooLarge, "a slice of this size with \(classCount) classes is too much to draw; ask for fewer categories or another axis")
        }
        if let bad = request.classes?.first(where: { $0 >= classCount }) {
            throw TensorError(.invalidRequest, "classes names class \(bad); there are \(classCount) (0...\(classCount - 1))")
        }
        var options = TensorOptions()
        options.region = Region((0..<3).map { $0 == request.axis ? .index(slice) : .slice(start: nil, stop: nil, step: nil) })
        options.categories = request.categories
        var opened: [String: FileIdentity] = [:]
        let imageSource = try previewImage(target, options: options)
        let image: Tensor
        do {
            defer { imageSource.close() }
            opened.merge(imageSource.openedFiles) { first, _ in first }
            image = try imageSource.readAll()
        }
        var mask: Tensor?
        if request.classes != [], try previewIsLabeled(target) {
            let maskSource: any TensorSource
            switch target {
            case .item(let index): maskSource = try self.mask(item: index, options: options)
            case .scan(let id, let aug): maskSource = try scanMask(id, aug: aug, options: options)
            }
            defer { maskSource.close() }
            let bytes = max(maskSource.readByteCount, maskSource.layout.byteCount)
            guard bytes <= byteLimit else { throw Self.overLimit(bytes, byteLimit, reading: maskSource.readByteCount > maskSource.layout.byteCount) }
            opened.merge(maskSource.openedFiles) { first, _ in first }
            mask = try maskSource.readAll()
        }
        return (image, mask, colors(for: request.categories), slice, opened)
    }

    private func previewImage(_ target: PreviewTarget, options: TensorOptions) throws(TensorError) -> any TensorSource {
        switch target {
        case .item(let index): try image(item: index, options: options)
        case .scan(let id, let aug): try scanImage(id, aug: aug, options: options)
        }
    }

    private func previewIsLabeled(_ target: PreviewTarget) throws(TensorError) -> Bool {
        switch target {
        case .item(let index):
            return try isLabeled(index)
        case .scan(let id, let aug):
            for index in try volume(scan: id, aug: aug).items where try !isLabeled(index) { return false }
            return true
        }
    }

    /// Each class's colour: its category's `color` (a class of `categories=` takes the colour
    /// of the category with the same id), else the palette's colour for its position.
    public func colors(for categories: CategorySelection?) -> [[UInt8]] {
        let specs = entry.metadata.categories
        let ids = categories?.ids ?? specs.map(\.id)
        return ids.enumerated().map { position, id in
            guard let color = specs.first(where: { $0.id == id })?.color, color.count == 3 else {
                return SliceRenderer.palette[position % SliceRenderer.palette.count]
            }
            return color.map { UInt8(clamping: $0) }
        }
    }
}
