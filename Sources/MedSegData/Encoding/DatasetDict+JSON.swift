/// Dataset dicts in JSON with MedSegPy's key names and order.
extension DatasetDict {
    public func write(to writer: inout JSONWriter) {
        if let fields = manifestFields {
            writer.value(.object(fields))
            return
        }
        writer.beginObject()
        writer.key("file_name")
        writer.string(fileName)
        if let semSegFile {
            writer.key("sem_seg_file")
            writer.string(semSegFile)
        }
        if let scanID {
            writer.key("scan_id")
            writer.string(scanID)
        }
        if let subjectID {
            writer.key("subject_id")
            writer.int(subjectID)
        }
        if let timePoint {
            writer.key("time_point")
            writer.int(timePoint)
        }
        if let sliceID {
            writer.key("slice_id")
            writer.int(sliceID)
        }
        if let scanNumSlices {
            writer.key("scan_num_slices")
            writer.int(scanNumSlices)
        }
        if let aug {
            writer.key("aug")
            writer.int(aug)
        }
        if let imageSize {
            writer.key("image_size")
            writer.beginArray()
            for size in imageSize { writer.int(size) }
            writer.endArray()
        }
        if let singlefilePath {
            writer.key("singlefile_path")
            writer.string(singlefilePath)
        }
        writer.endObject()
    }
}

extension ScanSummary {
    public var json: JSONValue {
        var object = JSONObject()
        object["scan_id"] = .string(scanID)
        object["subject_id"] = subjectID.map { .int($0) } ?? .null
        object["time_point"] = timePoint.map { .int($0) } ?? .null
        object["volumes"] = .array(
            volumes.map { volume in
                .object(
                    JSONObject([
                        ("aug", .int(volume.aug)),
                        ("num_slices", .int(volume.numSlices)),
                        ("items", .array([.int(volume.firstItem), .int(volume.lastItem)])),
                    ]))
            })
        return .object(object)
    }
}
