/// The HDF5 keys of MedSegPy's layouts, named once.
public enum ScanFileKeys {
    /// 2D slice files (`.im` and `.seg`) hold their array here.
    public static let sliceData = "data"
    /// 3D files hold the image volume here (H x W x D)...
    public static let volume = "volume"
    /// ...and the masks here (H x W x D x C).
    public static let mask = "seg"
}
