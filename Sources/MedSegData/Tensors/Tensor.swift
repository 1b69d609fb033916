public import HDF5

/// An array in memory: elements in C order, in `dtype`'s byte order.
public struct Tensor: Sendable, Equatable {
    public var dtype: DType
    public var shape: [Int]
    public var bytes: [UInt8]

    public init(dtype: DType, shape: [Int], bytes: [UInt8]) {
        precondition(bytes.count == shape.reduce(1, *) * dtype.size, "tensor bytes do not match shape \(shape) and \(dtype)")
        self.dtype = dtype
        self.shape = shape
        self.bytes = bytes
    }

    public init(zeros dtype: DType, shape: [Int]) {
        self.init(dtype: dtype, shape: shape, bytes: [UInt8](repeating: 0, count: shape.reduce(1, *) * dtype.size))
    }

    public var elementCount: Int { shape.reduce(1, *) }
    public var byteCount: Int { bytes.count }
}

/// The shape and type of an array before it is read: enough to size a response.
public struct TensorLayout: Hashable, Sendable, CustomStringConvertible {
    public var dtype: DType
    public var shape: [Int]

    public init(dtype: DType, shape: [Int]) {
        self.dtype = dtype
        self.shape = shape
    }

    /// Sizes saturate at `Int.max` instead of trapping: a stack of many large slices can describe
    /// more bytes than exist, and the response limit then refuses it.
    public var elementCount: Int { shape.checkedProduct ?? Int.max }
    public var byteCount: Int { (shape + [dtype.size]).checkedProduct ?? Int.max }
    public var description: String { "\(dtype.numpyDescriptor) \(shape)" }
}
