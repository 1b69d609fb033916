/// One item of the DatasetCatalog: what MedSegPy's loaders return per slice or volume.
///
/// Directory formats fill the typed fields; manifest items also keep every key as written
/// in `manifestFields`, which is then what is served.
public struct DatasetDict: Sendable, Equatable {
    /// Absolute path of the image file (the scan's group name in the single-file form).
    public var fileName: String
    public var semSegFile: String?
    public var scanID: String?
    public var subjectID: Int?
    public var timePoint: Int?
    public var aug: Int?
    /// 1-indexed slice number (2D).
    public var sliceID: Int?
    public var scanNumSlices: Int?
    /// The volume's shape (3D), read from the file.
    public var imageSize: [Int]?
    /// The HDF5 file holding the scan's group (single-file form).
    public var singlefilePath: String?
    /// Manifest items: the dict as written, paths made absolute.
    public var manifestFields: JSONObject?

    public init(
        fileName: String, semSegFile: String? = nil, scanID: String? = nil, subjectID: Int? = nil,
        timePoint: Int? = nil, aug: Int? = nil, sliceID: Int? = nil, scanNumSlices: Int? = nil,
        imageSize: [Int]? = nil, singlefilePath: String? = nil, manifestFields: JSONObject? = nil
    ) {
        self.fileName = fileName
        self.semSegFile = semSegFile
        self.scanID = scanID
        self.subjectID = subjectID
        self.timePoint = timePoint
        self.aug = aug
        self.sliceID = sliceID
        self.scanNumSlices = scanNumSlices
        self.imageSize = imageSize
        self.singlefilePath = singlefilePath
        self.manifestFields = manifestFields
    }

    /// The augmentation number, 0 when the dict has none (3D scans, most manifests).
    public var augmentation: Int { aug ?? 0 }
}
