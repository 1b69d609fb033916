/// A strided box of elements: per axis, `count` elements from `start`, `stride` apart.
public struct Hyperslab: Hashable, Sendable {
    public var start: [Int]
    public var count: [Int]
    public var stride: [Int]

    public init(start: [Int], count: [Int], stride: [Int]? = nil) {
        precondition(start.count == count.count, "hyperslab start and count differ in rank")
        self.start = start
        self.count = count
        self.stride = stride ?? Array(repeating: 1, count: start.count)
    }

    /// Every element of an array of this shape.
    public static func whole(_ shape: [Int]) -> Hyperslab {
        Hyperslab(start: Array(repeating: 0, count: shape.count), count: shape)
    }

    public var rank: Int { start.count }
    /// The product of `count`, or `Int.max` when it would overflow (callers compare it with limits).
    public var elementCount: Int { count.checkedProduct ?? Int.max }

    /// Whether it lies inside an array of this shape.
    public func fits(in shape: [Int]) -> Bool {
        guard shape.count == rank else { return false }
        for axis in 0..<rank {
            guard start[axis] >= 0, count[axis] >= 0, stride[axis] >= 1 else { return false }
            guard count[axis] > 0 else { continue }
            let (span, spanOverflow) = (count[axis] - 1).multipliedReportingOverflow(by: stride[axis])
            let (last, lastOverflow) = start[axis].addingReportingOverflow(span)
            if spanOverflow || lastOverflow || last >= shape[axis] { return false }
        }
        return true
    }

    public func isWhole(of shape: [Int]) -> Bool {
        start.allSatisfy { $0 == 0 } && count == shape && stride.allSatisfy { $0 == 1 }
    }
}

extension Collection where Element == Int {
    /// The product of the elements, or nil when it overflows or an element is negative.
    public var checkedProduct: Int? {
        var product = 1
        for value in self {
            guard value >= 0 else { return nil }
            let (result, overflow) = product.multipliedReportingOverflow(by: value)
            if overflow { return nil }
            product = result
        }
        return product
    }
}
