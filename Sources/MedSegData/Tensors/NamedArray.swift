/// One array of a response, by name (`image`, `mask`: the `.npz` member names): either one
/// source, or several of one layout stacked on a new first axis (a batch).
public struct NamedArray: Sendable {
    public var name: String
    public var sources: [any TensorSource]
    public var stacked: Bool

    public init(name: String, sources: [any TensorSource], stacked: Bool) {
        self.name = name
        self.sources = sources
        self.stacked = stacked
    }

    public var layout: TensorLayout {
        let first = sources[0].layout
        return stacked ? TensorLayout(dtype: first.dtype, shape: [sources.count] + first.shape) : first
    }
}
