public import HDF5

/// What becomes of a stored mask's channel axis: collated into classes (`categories`), with a
/// background channel or not, sent as channels or as a class-index map. Sources apply it to each
/// chunk they read; it knows the output's dtype and shape before any byte is read.
public struct MaskTransform: Sendable {
    public var selection: CategorySelection
    public var background: BackgroundChannel
    public var format: MaskFormat
    /// What the mask is, for errors found while reading (an overlap): `item 3 (x.seg)`.
    public var subject: String
    /// How many leading stored axes name a pixel of the item's array in errors: 2 for 2D slices
    /// (their stored singleton axis is not part of the item's `H x W x C'`), nil for all.
    public var positionRank: Int?

    public init(selection: CategorySelection, background: BackgroundChannel, format: MaskFormat, subject: String, positionRank: Int? = nil) {
        self.selection = selection
        self.background = background
        self.format = format
        self.subject = subject
        self.positionRank = positionRank
    }

    public var classCount: Int { selection.ids.count }

    /// Channels of the output's last axis, or nil for labels (which have no channel axis).
    public var outputChannels: Int? {
        format == .labels ? nil : classCount + (background == .none ? 0 : 1)
    }

    /// Stored elements visited per pixel: every channel a class lists, for each class listing it.
    var workPerPixel: Int {
        selection.ids.reduce(0) { $0.addingSaturating($1.channels.count) }
    }

    /// Refuses a collation whose work is out of proportion to the bytes read and sent: a class
    /// list may repeat one large group many times (1,000 copies of a 1,000-channel group is a
    /// million additions per pixel for one label byte). Up to 4 visits per element read or
    /// written pass, as do small selections.
    public func checkWork(pixels: Int, storedChannels: Int) throws(TensorError) {
        let (work, overflow) = pixels.multipliedReportingOverflow(by: workPerPixel)
        let proportional = 4 * (storedChannels + (outputChannels ?? 1))
        guard overflow || (work > Self.freeWork && workPerPixel > proportional) else { return }
        throw TensorError(
            .tooLarge,
            "\(subject): categories list \(workPerPixel) stored channels in all (over \(classCount) classes) for a mask of \(storedChannels) channels: too much work per pixel (at most \(proportional) here); list each class once"
        )
    }

    /// Work (element visits) any selection may take, whatever its proportion.
    static let freeWork = 1 << 24

    /// Channels keep the stored dtype; labels take the smallest unsigned type for `classCount + 1` values.
    public func outputDType(stored: DType) -> DType {
        guard format == .labels else { return stored }
        return classCount < 256 ? .uint8 : .uint16
    }

    /// The output shape for the given spatial shape.
    public func outputShape(spatial: [Int]) -> [Int] {
        outputChannels.map { spatial + [$0] } ?? spatial
    }

    /// Transforms `pixels x channels` stored elements into `out`, writing every byte of it.
    /// `coordinates(pixel)` gives a pixel's position in the item's or scan's whole array (not in
    /// the region or patch read), to name an overlapping pixel.
    public func apply(
        _ input: UnsafeRawBufferPointer, dtype: DType, channels: Int, into out: UnsafeMutableRawBufferPointer,
        coordinates: (Int) -> [Int]
    ) throws(TensorError) {
        switch format {
        case .channels:
            Collation.collate(input, dtype: dtype, channels: channels, selection: selection, background: background, into: out)
        case .labels:
            if let overlap = Collation.labels(
                input, dtype: dtype, channels: channels, selection: selection, background: background, into: out,
                labelType: outputDType(stored: dtype))
            {
                throw overlapError(overlap, at: coordinates(overlap.pixel))
            }
        }
    }

    private func overlapError(_ overlap: Collation.Overlap, at position: [Int]) -> TensorError {
        let (first, second) = overlap.classes
        return TensorError(
            .unprocessable,
            "\(subject): classes \(first) and \(second) (categories \(selection.ids[first]) and \(selection.ids[second])) are both set at pixel (\(position.map(String.init).joined(separator: ", "))); mask_format=labels needs at most one class per pixel: ask for mask_format=channels, or collate those channels into one class"
        )
    }
}

extension [Int] {
    /// The C-order coordinates of element `index` in an array of this shape.
    func unravel(_ index: Int) -> [Int] {
        var rest = index
        var coordinates = Array(repeating: 0, count: count)
        for axis in indices.reversed() where self[axis] > 0 {
            coordinates[axis] = rest % self[axis]
            rest /= self[axis]
        }
        return coordinates
    }
}
