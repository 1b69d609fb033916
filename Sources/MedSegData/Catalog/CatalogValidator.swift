/// What `medsegd check` does beyond registering: opens every item's image and mask as a request
/// would (HDF5 keys, element types, shapes, mask channels against the categories, scan stacks)
/// and, when asked, reads every byte. Every problem is reported, none stops the run.
public enum CatalogValidator {
    public static func validate(_ entry: CatalogEntry, readData: Bool) -> [DataProblem] {
        let reader = TensorReader(entry: entry)
        var problems: [DataProblem] = []
        func record(_ error: TensorError, _ fallback: String) {
            problems.append(DataProblem(.error, dataset: entry.name, file: error.file ?? fallback, error.message))
        }
        for (index, dict) in entry.dicts.enumerated() {
            var opened: [any TensorSource] = []
            do {
                opened.append(try reader.image(item: index, options: TensorOptions()))
                if dict.semSegFile != nil { opened.append(try reader.mask(item: index, options: TensorOptions())) }
                if readData { for source in opened { _ = try source.readAll() } }
            } catch {
                record(error, dict.fileName)
            }
            for source in opened { source.close() }
        }
        // 2D scans must stack, images and masks: no missing slice, one shape, one dtype.
        for scan in entry.scans {
            for volume in scan.volumes where volume.items.count > 1 {
                let labeled = volume.items.allSatisfy { entry.dicts[$0].semSegFile != nil }
                for masks in labeled ? [false, true] : [false] {
                    do {
                        let source =
                            masks
                            ? try reader.scanMask(scan.scanID, aug: volume.aug, options: TensorOptions())
                            : try reader.scanImage(scan.scanID, aug: volume.aug, options: TensorOptions())
                        source.close()
                    } catch  where !problems.contains(where: { $0.file == error.file }) {
                        // A broken slice is reported once, above; this catches missing slices and
                        // slices of different shapes or dtypes.
                        record(error, entry.metadata.scanRoot)
                    } catch {}
                }
            }
        }
        return problems
    }
}
