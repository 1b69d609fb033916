/// How an `.npz` member is stored (`compression=`): as is (ZIP method 0), or deflated (method 8),
/// which `np.load` reads with no extra package. Deflate applies to masks only: a float image
/// shrinks ~15% for ~5 ms per slice, a mask or label map 60-150x for ~0.1 ms (`bench/wire_codecs.py`).
public enum MemberCompression: String, Hashable, Sendable, CaseIterable {
    case none, deflate

    /// What a member named `name` is stored as under this option.
    public func method(forMember name: String) -> MemberCompression {
        self == .deflate && name == "mask" ? .deflate : .none
    }
}
