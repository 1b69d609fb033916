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

    public init(selection: CategorySelection, background: BackgroundChannel, format: MaskFormat, subject: String) {
        self.selection = selection
        self.background = background
        self.format = format
        self.subject = subject
    }

    public var classCount: Int { selection.ids.count }

    /// Channels of the output's last axis, or nil for labels (which have no channel axis).
    public var outputChannels: Int? {
        format == .labels ? nil : classCount + (background == .none ? 0 : 1)
    }

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
    /// `origin` and `shape` place the buffer's first pixel in the response array, to name an
    /// overlapping pixel: `coordinates(pixel)` gives its position.
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
