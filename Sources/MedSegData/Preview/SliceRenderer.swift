internal import HDF5

/// Draws one slice as RGB: the image in grey through a window, the collated mask's classes
/// blended over it in their colours, scaled down to bound the longer edge. docs/API.md gives
/// the formula; the browser test checks it pixel by pixel against NumPy.
public enum SliceRenderer {
    /// matplotlib's tab10, for classes without a configured colour.
    public static let palette: [[UInt8]] = [
        [31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189], [140, 86, 75], [227, 119, 194], [127, 127, 127],
        [188, 189, 34], [23, 190, 207],
    ]

    public struct Picture: Sendable {
        public var rgb: [UInt8]
        public var width: Int
        public var height: Int
    }

    /// `image`: `h x w`; `mask`: `h x w x C` collated classes, or nil; `colors`: one per class.
    public static func render(image: Tensor, mask: Tensor?, colors: [[UInt8]], request: PreviewRequest) -> Picture {
        let height = image.shape.count == 2 ? image.shape[0] : 0
        let width = image.shape.count == 2 ? image.shape[1] : 0
        let pixels = height * width
        var values = [Double](repeating: 0, count: pixels)
        values.withUnsafeMutableBytes { out in
            image.bytes.withUnsafeBytes { Conversion.convert($0, from: image.dtype, into: out, as: .float64) }
        }
        let (low, high) = window(values, request.window)
        var rgb = [UInt8](repeating: 0, count: pixels * 3)
        var grey = [Double](repeating: 0, count: pixels)
        for pixel in 0..<pixels {
            let value = values[pixel]
            // NaN, a window with no width, and a window or value that makes the fraction NaN (an
            // infinite bound: NumPy's NaN too) draw black.
            var level = 0.0
            let fraction = (value - low) / (high - low)
            if high > low, !fraction.isNaN { level = (Swift.min(Swift.max(fraction, 0), 1) * 255).rounded(.toNearestOrEven) }
            grey[pixel] = level
            let byte = UInt8(level)
            rgb[pixel * 3] = byte
            rgb[pixel * 3 + 1] = byte
            rgb[pixel * 3 + 2] = byte
        }
        if let mask, mask.shape.count == 3, mask.shape[0] == height, mask.shape[1] == width {
            overlay(&rgb, grey: grey, mask: mask, colors: colors, request: request)
        }
        return scaled(Picture(rgb: rgb, width: width, height: height), bound: request.size)
    }

    /// The window's bounds: as given, or the slice's 0.5 and 99.5 percentiles (NaN left out).
    static func window(_ values: [Double], _ window: PreviewRequest.Window) -> (Double, Double) {
        switch window {
        case .range(let low, let high):
            return (low, high)
        case .auto:
            var finite = values.filter { !$0.isNaN }
            guard !finite.isEmpty else { return (0, 0) }
            return (Selection.percentile(&finite, 0.5), Selection.percentile(&finite, 99.5))
        }
    }

    /// Each pixel takes the colour of the last shown class (in class order) that marks it, every
    /// pixel of the class or, with `outline`, those with a 4-neighbour outside it (or outside the
    /// slice), blended as `round((1 - opacity) * grey + opacity * colour)`.
    private static func overlay(_ rgb: inout [UInt8], grey: [Double], mask: Tensor, colors: [[UInt8]], request: PreviewRequest) {
        let (height, width, classes) = (mask.shape[0], mask.shape[1], mask.shape[2])
        let codec = ElementCodec(mask.dtype)
        let shown = (request.classes ?? Array(0..<classes)).filter { $0 < classes }.sorted()
        var painted = [Int](repeating: -1, count: height * width)
        mask.bytes.withUnsafeBytes { bytes in
            func isSet(_ row: Int, _ column: Int, _ k: Int) -> Bool {
                guard row >= 0, row < height, column >= 0, column < width else { return false }
                let element = (row * width + column) * classes + k
                return mask.dtype.size == 1 ? bytes[element] != 0 : !codec.isZero(bytes, element)
            }
            for k in shown {
                for row in 0..<height {
                    for column in 0..<width where isSet(row, column, k) {
                        if request.outline,
                            isSet(row - 1, column, k), isSet(row + 1, column, k), isSet(row, column - 1, k), isSet(row, column + 1, k)
                        {
                            continue
                        }
                        painted[row * width + column] = k
                    }
                }
            }
        }
        let opacity = request.opacity
        for pixel in 0..<(height * width) where painted[pixel] >= 0 {
            let color = colors.indices.contains(painted[pixel]) ? colors[painted[pixel]] : palette[painted[pixel] % palette.count]
            for channel in 0..<3 {
                let blended = ((1 - opacity) * grey[pixel] + opacity * Double(color[channel])).rounded(.toNearestOrEven)
                rgb[pixel * 3 + channel] = UInt8(Swift.min(Swift.max(blended, 0), 255))
            }
        }
    }

    /// Nearest-neighbour downscaling so that the longer edge is at most `bound`: the output is
    /// `h * bound // max(h, w)` by `w * bound // max(h, w)` (at least 1), pixel (r, c) taken
    /// from (r * h // out_h, c * w // out_w).
    static func scaled(_ picture: Picture, bound: Int?) -> Picture {
        let longer = Swift.max(picture.height, picture.width)
        guard let bound, longer > bound else { return picture }
        let height = Swift.max(1, picture.height * bound / longer)
        let width = Swift.max(1, picture.width * bound / longer)
        var rgb = [UInt8](repeating: 0, count: height * width * 3)
        for row in 0..<height {
            let sourceRow = row * picture.height / height
            for column in 0..<width {
                let source = (sourceRow * picture.width + column * picture.width / width) * 3
                let target = (row * width + column) * 3
                rgb[target] = picture.rgb[source]
                rgb[target + 1] = picture.rgb[source + 1]
                rgb[target + 2] = picture.rgb[source + 2]
            }
        }
        return Picture(rgb: rgb, width: width, height: height)
    }
}
