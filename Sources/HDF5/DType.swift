internal import CHDF5

/// An element type medsegd can serve, described the way NumPy describes it.
public struct DType: Hashable, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        case bool, int, uint, float
    }

    public enum ByteOrder: Sendable {
        case little, big

        /// One-byte types have no byte order (NumPy writes `|`).
        public static let native: ByteOrder = 1.littleEndian == 1 ? .little : .big
    }

    public var kind: Kind
    /// Bytes per element.
    public var size: Int
    public var byteOrder: ByteOrder

    public init(_ kind: Kind, size: Int, byteOrder: ByteOrder = .little) {
        self.kind = kind
        self.size = size
        self.byteOrder = size == 1 ? .little : byteOrder
    }

    public static let bool = DType(.bool, size: 1)
    public static let uint8 = DType(.uint, size: 1)
    public static let int8 = DType(.int, size: 1)
    public static let int16 = DType(.int, size: 2)
    public static let uint16 = DType(.uint, size: 2)
    public static let int32 = DType(.int, size: 4)
    public static let uint32 = DType(.uint, size: 4)
    public static let int64 = DType(.int, size: 8)
    public static let uint64 = DType(.uint, size: 8)
    public static let float16 = DType(.float, size: 2)
    public static let float32 = DType(.float, size: 4)
    public static let float64 = DType(.float, size: 8)

    /// NumPy's type string: `<f4`, `>i2`, `|u1`, `|b1`.
    public var numpyDescriptor: String {
        let order = size == 1 ? "|" : (byteOrder == .little ? "<" : ">")
        let code: String
        switch kind {
        case .bool: code = "b"
        case .int: code = "i"
        case .uint: code = "u"
        case .float: code = "f"
        }
        return "\(order)\(code)\(size)"
    }

    /// NumPy's name for the type, without byte order: `float32`, `uint8`, `bool`.
    public var name: String {
        kind == .bool ? "bool" : "\(kind.rawValue)\(size * 8)"
    }

    /// The same type in another byte order (no change for one-byte types).
    public func withByteOrder(_ order: ByteOrder) -> DType {
        DType(kind, size: size, byteOrder: order)
    }

    public var description: String { numpyDescriptor }

    /// Parses a NumPy name (`float32`, `uint8`, `bool`) into a little-endian type.
    public init?(numpyName: String) {
        switch numpyName {
        case "bool": self = .bool
        case "uint8": self = .uint8
        case "int8": self = .int8
        case "int16": self = .int16
        case "uint16": self = .uint16
        case "int32": self = .int32
        case "uint32": self = .uint32
        case "int64": self = .int64
        case "uint64": self = .uint64
        case "float16": self = .float16
        case "float32": self = .float32
        case "float64": self = .float64
        default: return nil
        }
    }
}

extension DType {
    /// Reads the element type of an HDF5 type id; `nil` with a reason when medsegd cannot serve it.
    static func from(typeID: hid_t) -> Result<DType, UnsupportedType> {
        let typeClass = H5Tget_class(typeID)
        let size = Int(H5Tget_size(typeID))
        let order: ByteOrder = H5Tget_order(typeID) == H5T_ORDER_BE ? .big : .little
        switch typeClass {
        case H5T_INTEGER:
            guard [1, 2, 4, 8].contains(size) else { return .failure(.init("\(size * 8)-bit integer")) }
            // Served as raw bytes: only integers that fill their bytes (no bit offset or padding).
            guard H5Tget_precision(typeID) == size * 8, H5Tget_offset(typeID) == 0 else {
                return .failure(.init("\(H5Tget_precision(typeID))-bit integer at bit offset \(H5Tget_offset(typeID)) in \(size) bytes"))
            }
            let signed = H5Tget_sign(typeID) == H5T_SGN_2
            return .success(DType(signed ? .int : .uint, size: size, byteOrder: order))
        case H5T_FLOAT:
            guard isIEEE(typeID, size: size) else { return .failure(.init("non-IEEE \(size * 8)-bit float")) }
            return .success(DType(.float, size: size, byteOrder: order))
        case H5T_ENUM:
            // h5py stores NumPy bools as an enum over int8 with FALSE=0, TRUE=1; any other enum
            // would be served as wrong values.
            let base = H5Tget_super(typeID)
            defer { H5Tclose(base) }
            guard H5Tget_size(base) == 1, H5Tget_nmembers(typeID) == 2, enumValue(typeID, "FALSE") == 0, enumValue(typeID, "TRUE") == 1 else {
                return .failure(.init("enum (only h5py's bool enum, FALSE=0 and TRUE=1, is served)"))
            }
            return .success(.bool)
        case H5T_COMPOUND: return .failure(.init("compound"))
        case H5T_STRING: return .failure(.init(H5Tis_variable_str(typeID) > 0 ? "variable-length string" : "string"))
        case H5T_VLEN: return .failure(.init("variable-length"))
        case H5T_ARRAY: return .failure(.init("array"))
        case H5T_OPAQUE: return .failure(.init("opaque"))
        case H5T_REFERENCE: return .failure(.init("reference"))
        case H5T_BITFIELD: return .failure(.init("bitfield"))
        default: return .failure(.init("unknown type class \(typeClass.rawValue)"))
        }
    }

    private static func isIEEE(_ typeID: hid_t, size: Int) -> Bool {
        var signPosition = 0
        var exponentPosition = 0
        var exponentSize = 0
        var mantissaPosition = 0
        var mantissaSize = 0
        guard H5Tget_fields(typeID, &signPosition, &exponentPosition, &exponentSize, &mantissaPosition, &mantissaSize) >= 0 else {
            HDF5Library.takeErrorMessage()
            return false
        }
        // The whole IEEE 754 layout: sign on top, exponent then mantissa below it, standard bias.
        let bias = Int(H5Tget_ebias(typeID))
        let layout: (exponent: Int, mantissa: Int, bias: Int)
        switch size {
        case 2: layout = (5, 10, 15)
        case 4: layout = (8, 23, 127)
        case 8: layout = (11, 52, 1023)
        default: return false
        }
        return exponentSize == layout.exponent && mantissaSize == layout.mantissa && bias == layout.bias && mantissaPosition == 0
            && exponentPosition == layout.mantissa && signPosition == size * 8 - 1 && H5Tget_precision(typeID) == size * 8
            && H5Tget_offset(typeID) == 0
    }

    /// The value of an enum member given by name, or nil when the enum has no such member.
    private static func enumValue(_ typeID: hid_t, _ name: String) -> Int8? {
        var value: Int8 = 0
        guard H5Tenum_valueof(typeID, name, &value) >= 0 else {
            HDF5Library.takeErrorMessage()
            return nil
        }
        return value
    }

    /// A new HDF5 type id for storing this type; the caller closes it.
    func makeTypeID() -> hid_t {
        let typeID: hid_t
        switch (kind, size) {
        case (.bool, _):
            typeID = H5Tenum_create(medseg_h5t_native_int8())
            var falseValue: Int8 = 0
            var trueValue: Int8 = 1
            H5Tenum_insert(typeID, "FALSE", &falseValue)
            H5Tenum_insert(typeID, "TRUE", &trueValue)
            return typeID
        case (.int, 1): typeID = H5Tcopy(medseg_h5t_std_i8le())
        case (.int, 2): typeID = H5Tcopy(medseg_h5t_std_i16le())
        case (.int, 4): typeID = H5Tcopy(medseg_h5t_std_i32le())
        case (.int, _): typeID = H5Tcopy(medseg_h5t_std_i64le())
        case (.uint, 1): typeID = H5Tcopy(medseg_h5t_std_u8le())
        case (.uint, 2): typeID = H5Tcopy(medseg_h5t_std_u16le())
        case (.uint, 4): typeID = H5Tcopy(medseg_h5t_std_u32le())
        case (.uint, _): typeID = H5Tcopy(medseg_h5t_std_u64le())
        case (.float, 2):
            // HDF5 1.10 has no predefined half type; this is the layout h5py writes.
            typeID = H5Tcopy(medseg_h5t_ieee_f32le())
            H5Tset_fields(typeID, 15, 10, 5, 0, 10)
            H5Tset_size(typeID, 2)
            H5Tset_ebias(typeID, 15)
            H5Tset_precision(typeID, 16)
        case (.float, 4): typeID = H5Tcopy(medseg_h5t_ieee_f32le())
        case (.float, _): typeID = H5Tcopy(medseg_h5t_ieee_f64le())
        }
        if byteOrder == .big { H5Tset_order(typeID, H5T_ORDER_BE) }
        return typeID
    }
}

/// Why an HDF5 type cannot be served: its class in words (`compound`, `variable-length string`).
struct UnsupportedType: Error {
    var what: String
    init(_ what: String) { self.what = what }
}
