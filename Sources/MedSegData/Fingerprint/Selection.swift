/// NumPy's `percentile` (linear interpolation) by selection in place: O(n) expected, and
/// O(n log n) at worst (a range that does not shrink fast enough is sorted), so that no file's
/// values can make a fingerprint pass quadratic.
enum Selection {
    /// The `q`th percentile (0...100) of `values` (not empty, no NaN); reorders them.
    static func percentile(_ values: inout [Double], _ q: Double) -> Double {
        let position = q / 100 * Double(values.count - 1)
        let lower = Int(position.rounded(.down))
        let fraction = position - Double(lower)
        let low = select(&values, lower)
        guard fraction > 0, lower + 1 < values.count else { return low }
        // After selection everything past `lower` is >= it: the next order statistic is their minimum.
        let high = values[(lower + 1)...].min()!
        return fraction >= 0.5 ? high - (high - low) * (1 - fraction) : low + (high - low) * fraction
    }

    /// The `k`th smallest of `values`, placed at index k with smaller ones before it and larger after.
    static func select(_ values: inout [Double], _ k: Int) -> Double {
        values.withUnsafeMutableBufferPointer { buffer in
            var low = 0
            var high = buffer.count - 1
            var budget = 2 * (Int.bitWidth - buffer.count.leadingZeroBitCount) + 8
            while low < high {
                budget -= 1
                if budget < 0 {
                    buffer[low...high].sort()
                    break
                }
                let middle = low + (high - low) / 2
                let (a, b, c) = (buffer[low], buffer[middle], buffer[high])
                let pivot = max(min(a, b), min(max(a, b), c))
                var i = low
                var j = high
                while i <= j {
                    while buffer[i] < pivot { i += 1 }
                    while buffer[j] > pivot { j -= 1 }
                    if i <= j {
                        buffer.swapAt(i, j)
                        i += 1
                        j -= 1
                    }
                }
                if k <= j {
                    high = j
                } else if k >= i {
                    low = i
                } else {
                    break
                }
            }
            return buffer[k]
        }
    }
}
