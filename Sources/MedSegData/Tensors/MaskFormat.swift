/// How a collated mask is sent (`mask_format=`): one channel per class, or one class index per
/// pixel, the target PyTorch's `CrossEntropyLoss` takes and a quarter of the bytes or less.
public enum MaskFormat: String, Hashable, Sendable, CaseIterable {
    /// `H x W (x D) x C'`: MedSegPy's collated one-hot channels.
    case channels
    /// `H x W (x D)` of uint8 (uint16 past 255 classes): 0 where no class is set and k + 1 for
    /// class k, or with `background=last` k for class k and C where none is.
    case labels
}
