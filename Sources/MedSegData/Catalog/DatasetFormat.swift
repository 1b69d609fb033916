/// The on-disk layouts medsegd can register (CONFIG.md's `format`).
public enum DatasetFormat: String, CaseIterable, Sendable {
    /// A folder of `%07d_V%02d-Aug%02d_%03d.im` slices with `.seg` masks.
    case slices2D = "slices-2d"
    /// A folder of one HDF5 file per scan, with `volume` and `seg`.
    case volumes3D = "volumes-3d"
    /// One HDF5 file with one group per scan, each with `volume` and `seg`.
    case volumes3DSingleFile = "volumes-3d-singlefile"
    /// A JSON array (or JSON Lines) of dataset dicts.
    case manifest

    /// Directory formats are configured by `scan_root`, file formats by `path`.
    public var isConfiguredByPath: Bool {
        self == .volumes3DSingleFile || self == .manifest
    }
}
