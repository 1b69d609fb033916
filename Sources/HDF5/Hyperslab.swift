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
    public var elementCount: Int { count.reduce(1, *) }

    /// Whether it lies inside an array of this shape.
    public func fits(in shape: [Int]) -> Bool {
        guard shape.count == rank else { return false }
        for axis in 0..<rank {
            guard start[axis] >= 0, count[axis] >= 0, stride[axis] >= 1 else { return false }
            if count[axis] > 0, start[axis] + (count[axis] - 1) * stride[axis] >= shape[axis] { return false }
        }
        return true
    }

    public func isWhole(of shape: [Int]) -> Bool {
        start.allSatisfy { $0 == 0 } && count == shape && stride.allSatisfy { $0 == 1 }
    }
}
