import HDF5
import Logging
import MedSegData
import MedSegServer
import NIOHTTP1
import TestSupport
import Testing

/// Files with known values in every layout the tensor routes serve.
struct TensorFixture {
    let folder = TemporaryDirectory()
    let catalog: Catalog

    init() throws {
        let slices = folder.folder("2d")
        for slice in 1...3 { try Fixtures.writeSlice(in: slices, "0000001_V00-Aug00_00\(slice)", height: 8, width: 6, seed: slice) }
        try Fixtures.writeSlice(in: slices, "0000002_V00-Aug00_001", height: 8, width: 6, seed: 9, labeled: false)
        try Fixtures.writeSlice(in: slices, "0000003_V00-Aug00_001", height: 10, width: 6, seed: 4)
        let typed = folder.folder("typed")
        let bigEndian = DType(.int, size: 2, byteOrder: .big)
        try TensorFixture.bigEndianBytes.withUnsafeBytes {
            try HDF5File.create(typed + "/0000001_V00-Aug00_001.im").write("data", dtype: bigEndian, shape: [2, 3, 1], bytes: $0)
        }
        try HDF5File.create(typed + "/0000001_V00-Aug00_001.seg").write(
            "data", [true, false, false, true, true, true, false, false, true, false, true, false], shape: [2, 3, 1, 2])
        let volumes = folder.folder("3d")
        try Fixtures.writeVolume(into: HDF5File.create(volumes + "/0000004_V00.h5"), shape: [600, 600, 8], channels: 6, seed: 5)
        try Fixtures.writeVolume(
            into: HDF5File.create(volumes + "/0000005_V00.h5"), shape: [16, 12, 6], seed: 6, layout: .chunked([4, 4, 3], gzipLevel: 4))
        let path = folder.write(
            "medsegd.yaml",
            Fixtures.config(datasets: [
                "oai_2d: {format: slices-2d, scan_root: 2d}",
                "typed: {format: slices-2d, scan_root: typed, categories: [{id: 0, name: a}, {id: 1, name: b}]}",
                "oai_3d: {format: volumes-3d, scan_root: 3d}",
            ]))
        catalog = CatalogLoader.load(try ConfigLoader.load(path: path), logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
    }

    static let bigEndianBytes: [UInt8] = [0x01, 0x00, 0xFF, 0xFE, 0x00, 0x02, 0x7F, 0xFF, 0x80, 0x00, 0x00, 0x00]
}

@Suite("Tensor routes, through the router")
struct TensorRoutesTests {
    let fixture: TensorFixture
    let oai: [CategoryID] = [.single(0), .collated([1, 2]), .single(3), .collated([4, 5])]

    init() throws {
        fixture = try TensorFixture()
    }

    /// The routes without a socket (HummingbirdTesting's router); streaming, TLS and signals are
    /// tested over real connections elsewhere (OperationsTests, medsegdTests, the Python tests).
    private func withServer(_ settings: ServerSettings = ServerSettings(), _ body: (TestClient) async throws -> Void) async throws {
        try await withRouterTest(store: CatalogStore(fixture.catalog), settings: settings, body)
    }

    private func floats(_ array: DecodedArray) -> [Float] { array.values(Float.self) }

    @Test("item image as npy (default), raw and by Accept; values as written")
    func itemImage() async throws {
        try await withServer { client in
            let npy = try await client.get("/v1/datasets/oai_2d/items/1/image")
            #expect(npy.status == 200)
            #expect(npy.headers["content-type"].first == "application/x-npy")
            let array = try NumpyDecoding.npy(npy.body)
            #expect(array.descriptor == "<f4")
            #expect(array.shape == [8, 6, 1])
            #expect(floats(array) == Fixtures.imageValues(count: 48, seed: 2))

            let raw = try await client.get("/v1/datasets/oai_2d/items/1/image?format=raw")
            #expect(raw.headers["content-type"].first == "application/octet-stream")
            #expect(raw.headers["x-tensor-dtype"].first == "<f4")
            #expect(raw.headers["x-tensor-shape"].first == "8,6,1")
            #expect(raw.body == array.data)

            let accepted = try await client.request("/v1/datasets/oai_2d/items/1/image", headers: [("Accept", "application/octet-stream")])
            #expect(accepted.body == array.data)
            let preferred = try await client.request(
                "/v1/datasets/oai_2d/items/1/image", headers: [("Accept", "application/x-npy;q=0.5, application/octet-stream")])
            #expect(preferred.headers["content-type"].first == "application/octet-stream")
        }
    }

    @Test("stored dtypes and byte orders are kept; dtype= converts to little-endian")
    func dtypes() async throws {
        try await withServer { client in
            let image = try NumpyDecoding.npy(try await client.get("/v1/datasets/typed/items/0/image").body)
            #expect(image.descriptor == ">i2")
            #expect(image.data == TensorFixture.bigEndianBytes)
            let converted = try NumpyDecoding.npy(try await client.get("/v1/datasets/typed/items/0/image?dtype=float32").body)
            #expect(converted.descriptor == "<f4")
            #expect(floats(converted) == [256, -2, 2, 32767, -32768, 0])
            let half = try NumpyDecoding.npy(try await client.get("/v1/datasets/typed/items/0/image?dtype=float16").body)
            #expect(half.descriptor == "<f2")
            #expect(half.values(Float16.self) == [256, -2, 2, 32767, -32768, 0].map { Float16(Float($0)) })
            let mask = try NumpyDecoding.npy(try await client.get("/v1/datasets/typed/items/0/mask").body)
            #expect(mask.descriptor == "|b1")
            #expect(mask.shape == [2, 3, 2])
            let merged = try NumpyDecoding.npy(
                try await client.get("/v1/datasets/typed/items/0/mask?categories=%5B%5B0,1%5D%5D&background=last").body)
            #expect(merged.data == [1, 0, 1, 0, 1, 0, 0, 1, 1, 0, 1, 0])
        }
    }

    @Test("item mask collated with the dataset's ids by default, or categories= and background=")
    func itemMask() async throws {
        try await withServer { client in
            let stored = Fixtures.maskValues(count: 48 * 6, channels: 6, seed: 1)
            let mask = try NumpyDecoding.npy(try await client.get("/v1/datasets/oai_2d/items/0/mask").body)
            #expect(mask.descriptor == "|u1")
            #expect(mask.shape == [8, 6, 4])
            var expected: [UInt8] = []
            for pixel in 0..<48 { expected += Expected.collate(Array(stored[(pixel * 6)..<(pixel * 6 + 6)]), oai) }
            #expect(mask.data == expected)

            let custom = try NumpyDecoding.npy(
                try await client.get("/v1/datasets/oai_2d/items/0/mask?categories=%5B5,%5B0,3%5D%5D&background=first&region=0:2,0:1").body)
            #expect(custom.shape == [2, 1, 3])
            var customExpected: [UInt8] = []
            for pixel in [0, 6] {
                let channels = Array(stored[(pixel * 6)..<(pixel * 6 + 6)])
                let values = Expected.collate(channels, [.single(5), .collated([0, 3])])
                customExpected += [values.allSatisfy { $0 == 0 } ? 1 : 0] + values
            }
            #expect(custom.data == customExpected)
        }
    }

    @Test("item pair as npz: image and mask, image alone when unlabeled")
    func itemPair() async throws {
        try await withServer { client in
            let pair = try await client.get("/v1/datasets/oai_2d/items/0?region=1:3")
            #expect(pair.headers["content-type"].first == "application/x-npz")
            let members = try NumpyDecoding.npz(pair.body)
            #expect(members["image"]?.shape == [2, 6, 1])
            #expect(members["mask"]?.shape == [2, 6, 4])
            #expect(members["image"].map(floats) == Array(Fixtures.imageValues(count: 48, seed: 1)[6..<18]))
            let unlabeled = try NumpyDecoding.npz(try await client.get("/v1/datasets/oai_2d/items/3").body)
            #expect(Set(unlabeled.keys) == ["image"])
        }
    }

    @Test("scans: 2D slices stacked, 3D volumes streamed whole or by region, gzip chunks alike")
    func scans() async throws {
        try await withServer { client in
            let stack = try NumpyDecoding.npy(try await client.get("/v1/datasets/oai_2d/scans/0000001_V00/image").body)
            #expect(stack.shape == [8, 6, 3])
            let values = floats(stack)
            for d in 0..<3 { #expect(values[Expected.offset([7, 5, d], [8, 6, 3])] == Fixtures.imageValues(count: 48, seed: d + 1)[47]) }
            let maskStack = try NumpyDecoding.npy(try await client.get("/v1/datasets/oai_2d/scans/0000001_V00/mask?aug=0").body)
            #expect(maskStack.shape == [8, 6, 3, 4])

            // 600 x 600 x 8 float32 is 11.5 MB: more than the prefetch budget, so it streams in chunks.
            let big = try await client.get("/v1/datasets/oai_3d/scans/0000004_V00/image")
            #expect(big.headers["content-length"].first == String(128 + 600 * 600 * 8 * 4))
            #expect(floats(try NumpyDecoding.npy(big.body)) == Fixtures.imageValues(count: 600 * 600 * 8, seed: 5))
            let bigMask = try NumpyDecoding.npy(try await client.get("/v1/datasets/oai_3d/items/0/mask?region=0:300").body)
            #expect(bigMask.shape == [300, 600, 8, 4])
            // A streamed npz: the CRC of each member is computed chunk by chunk and must check out.
            let pair = try NumpyDecoding.npz(try await client.get("/v1/datasets/oai_3d/items/0").body)
            #expect(pair["image"].map(floats) == Fixtures.imageValues(count: 600 * 600 * 8, seed: 5))
            #expect(pair["mask"]?.shape == [600, 600, 8, 4])

            let patch = try NumpyDecoding.npy(try await client.get("/v1/datasets/oai_3d/scans/0000005_V00/image?region=4:8,2:10:3,-2:").body)
            #expect(patch.shape == [4, 3, 2])
            let all = Fixtures.imageValues(count: 16 * 12 * 6, seed: 6)
            #expect(floats(patch)[Expected.offset([1, 2, 0], [4, 3, 2])] == all[Expected.offset([5, 8, 4], [16, 12, 6])])
        }
    }

    @Test("batch: npz of stacked images and masks, in the order asked")
    func batch() async throws {
        try await withServer { client in
            let body = #"{"indices": [2, 0, 2], "categories": [[0, 1], 3], "background": "last", "region": "0:4", "dtype": "float64"}"#
            let reply = try await client.request("/v1/datasets/oai_2d/batch", method: .POST, body: Array(body.utf8))
            #expect(reply.status == 200)
            let members = try NumpyDecoding.npz(reply.body)
            let image = try #require(members["image"])
            #expect(image.descriptor == "<f8")
            #expect(image.shape == [3, 4, 6, 1])
            let doubles = image.values(Double.self)
            #expect(doubles[0] == Double(Fixtures.imageValues(count: 1, seed: 3)[0]))
            #expect(doubles[24] == Double(Fixtures.imageValues(count: 1, seed: 1)[0]))
            let mask = try #require(members["mask"])
            #expect(mask.descriptor == "|u1")
            #expect(mask.shape == [3, 4, 6, 3])
        }
    }

    @Test("mask_format=labels and compression=deflate on items, pairs, scans and batches")
    func wireOptions() async throws {
        try await withServer { client in
            /// Labels of slice `seed`'s mask under [0, [1, 2]]: every pixel holds channels 0 and 3,
            /// 1 and 4, or 2 and 5, so never two classes.
            func expectedLabels(seed: Int) -> [UInt8] {
                let stored = Fixtures.maskValues(count: 48 * 6, channels: 6, seed: seed)
                return (0..<48).map { pixel in
                    let values = Expected.collate(Array(stored[(pixel * 6)..<(pixel * 6 + 6)]), [.single(0), .collated([1, 2])])
                    return UInt8(values.firstIndex { $0 != 0 }.map { $0 + 1 } ?? 0)
                }
            }
            let query = "categories=%5B0,%5B1,2%5D%5D&mask_format=labels"
            let labels = try NumpyDecoding.npy(try await client.get("/v1/datasets/oai_2d/items/0/mask?\(query)").body)
            #expect(labels.descriptor == "|u1")
            #expect(labels.shape == [8, 6])
            let expected = expectedLabels(seed: 1)
            #expect(labels.data == expected)
            let last = try NumpyDecoding.npy(try await client.get("/v1/datasets/oai_2d/items/0/mask?\(query)&background=last").body)
            #expect(last.data == expected.map { $0 == 0 ? 2 : $0 - 1 })

            let pair = try await client.get("/v1/datasets/oai_2d/items/0?\(query)&compression=deflate&dtype=float16")
            let (members, methods) = try NumpyDecoding.npzWithMethods(pair.body)
            #expect(methods == ["image": 0, "mask": 8])
            #expect(members["image"]?.descriptor == "<f2")
            #expect(members["mask"]?.data == expected)
            #expect(pair.headers["content-length"].first == String(pair.body.count))

            let stack = try NumpyDecoding.npy(try await client.get("/v1/datasets/oai_2d/scans/0000001_V00/mask?\(query)&region=:,2").body)
            #expect(stack.shape == [8, 3])
            let slices = (1...3).map { expectedLabels(seed: $0) }
            let column: [UInt8] = (0..<8).flatMap { (row: Int) -> [UInt8] in (0..<3).map { (slice: Int) -> UInt8 in slices[slice][row * 6 + 2] } }
            #expect(stack.data == column)

            let body = #"{"indices": [0, 2], "categories": [0, [1, 2]], "mask_format": "labels", "compression": "deflate"}"#
            let batch = try await client.request("/v1/datasets/oai_2d/batch", method: .POST, body: Array(body.utf8))
            let batchMembers = try NumpyDecoding.npzWithMethods(batch.body)
            #expect(batchMembers.methods["mask"] == 8)
            #expect(batchMembers.members["mask"]?.shape == [2, 8, 6])
            #expect(Array(batchMembers.members["mask"]?.data.prefix(48) ?? []) == expected)

            // Overlapping classes, bad values, options a route does not take.
            let overlap = try await client.get("/v1/datasets/oai_2d/items/0/mask?categories=%5B0,3%5D&mask_format=labels")
            #expect(overlap.status == 422)
            #expect(String(decoding: overlap.body, as: UTF8.self).contains("both set at pixel (0, 2)"))
            #expect(try await client.get("/v1/datasets/oai_2d/items/0/mask?mask_format=onehot").status == 400)
            #expect(try await client.get("/v1/datasets/oai_2d/items/0?compression=zstd").status == 400)
            #expect(try await client.get("/v1/datasets/oai_2d/items/0/mask?compression=deflate").status == 400)
            #expect(try await client.get("/v1/datasets/oai_2d/items/0/image?mask_format=labels").status == 400)

            // Each option set has its own ETag.
            var tags: Set<String> = []
            for options in ["", "&mask_format=labels", "&compression=deflate", "&mask_format=labels&compression=deflate"] {
                tags.formUnion(try await client.get("/v1/datasets/oai_2d/items/0?categories=%5B0,%5B1,2%5D%5D\(options)").headers["etag"])
            }
            #expect(tags.count == 4)
        }
    }

    @Test("strong ETags: If-None-Match gives 304; HEAD gives the headers without reading")
    func caching() async throws {
        try await withServer { client in
            let first = try await client.get("/v1/datasets/oai_2d/items/0/mask")
            let etag = try #require(first.headers["etag"].first)
            #expect(etag.hasPrefix("\"") && !etag.hasPrefix("W/"))
            #expect(try await client.get("/v1/datasets/oai_2d/items/0/mask").headers["etag"].first == etag)
            #expect(try await client.get("/v1/datasets/oai_2d/items/0/mask?background=first").headers["etag"].first != etag)
            let cached = try await client.request("/v1/datasets/oai_2d/items/0/mask", headers: [("If-None-Match", etag)])
            #expect(cached.status == 304)
            #expect(cached.body.isEmpty)
            let other = try await client.request("/v1/datasets/oai_2d/items/0/mask", headers: [("If-None-Match", "\"other\"")])
            #expect(other.status == 200)
            for path in ["/v1/datasets/oai_2d/items/0/mask", "/v1/datasets/oai_2d/items/0", "/v1/datasets/oai_3d/scans/0000004_V00/image"] {
                let head = try await client.request(path, method: .HEAD)
                #expect(head.status == 200)
                #expect(head.body.isEmpty)
                let get = try await client.get(path)
                #expect(head.headers["content-length"] == get.headers["content-length"])
                #expect(head.headers["etag"] == get.headers["etag"])
            }
        }
    }

    /// One server for the whole table: the fixture's large volume is costly to write per case.
    static let errorCases: [(String, Int, String)] = [
        ("/v1/datasets/oai_2d/items/99/image", 404, "not_found"),
        ("/v1/datasets/oai_2d/items/-1/image", 404, "not_found"),
        ("/v1/datasets/oai_2d/items/99999999999999999999999/image", 404, "not_found"),
        ("/v1/datasets/oai_2d/items/abc/image", 400, "bad_request"),
        ("/v1/datasets/oai_2d/items/3/mask", 404, "not_found"),
        ("/v1/datasets/oai_2d/items/0/mask?categories=%5B0,9%5D", 400, "bad_request"),
        ("/v1/datasets/oai_2d/items/0/mask?categories=%5B%5B%5B0%5D%5D%5D", 400, "bad_request"),
        ("/v1/datasets/oai_2d/items/0/mask?categories=nope", 400, "bad_request"),
        ("/v1/datasets/oai_2d/items/0/mask?background=middle", 400, "bad_request"),
        ("/v1/datasets/oai_2d/items/0/mask?dtype=float32", 400, "bad_request"),
        ("/v1/datasets/oai_2d/items/0/image?dtype=complex64", 400, "bad_request"),
        ("/v1/datasets/oai_2d/items/0/image?region=0:4:0", 400, "bad_request"),
        ("/v1/datasets/oai_2d/items/0/image?region=::-1", 400, "bad_request"),
        ("/v1/datasets/oai_2d/items/0/image?region=99", 400, "bad_request"),
        ("/v1/datasets/oai_2d/items/0/image?region=1,2,3,4", 400, "bad_request"),
        ("/v1/datasets/oai_2d/items/0/image?format=npz", 400, "bad_request"),
        ("/v1/datasets/oai_2d/items/0/image?format=json", 400, "bad_request"),
        ("/v1/datasets/oai_2d/items/0?format=npy", 400, "bad_request"),
        ("/v1/datasets/oai_2d/scans/0000009_V00/image", 404, "not_found"),
        ("/v1/datasets/oai_2d/scans/0000001_V00/image?aug=4", 404, "not_found"),
        ("/v1/datasets/oai_2d/scans/0000001_V00/image?aug=x", 400, "bad_request"),
        ("/v1/datasets/oai_2d/scans/0000002_V00/mask", 422, "unprocessable"),
        ("/v1/datasets/oai_2d/scans/..%2F..%2Fetc%2Fpasswd/image", 404, "not_found"),
        ("/v1/datasets/typed/items/0/mask?categories=%5B0,1,2%5D", 400, "bad_request"),
    ]

    @Test("cached responses are byte-identical; a file replaced on disk is served fresh")
    func cacheFollowsFiles() async throws {
        try await withServer { client in
            let first = try await client.get("/v1/datasets/oai_2d/items/2/image")
            let again = try await client.get("/v1/datasets/oai_2d/items/2/image")
            #expect(again.body == first.body)
            #expect(again.headers["etag"] == first.headers["etag"])
            let path = fixture.folder.path + "/2d/0000001_V00-Aug00_003.im"
            try HDF5File.create(path).write("data", [Float](repeating: 42, count: 48), shape: [8, 6, 1])
            let fresh = try await client.get("/v1/datasets/oai_2d/items/2/image")
            #expect(fresh.headers["etag"] != first.headers["etag"])
            #expect(floats(try NumpyDecoding.npy(fresh.body)) == [Float](repeating: 42, count: 48))
        }
    }

    @Test("every error status of the contract")
    func errors() async throws {
        try await withServer { client in
            for (path, status, code) in Self.errorCases {
                let reply = try await client.get(path)
                #expect(reply.status == status, "\(path): \(reply.text)")
                #expect(reply.errorCode == code, "\(path)")
                #expect(!reply.text.contains(fixture.folder.path))
            }
        }
    }

    static let batchErrorCases: [(String, Int, String)] = [
        (#"{"indices": [0, 99]}"#, 404, "item 99 is out of range"),
        (#"{"indices": [0, -3]}"#, 404, "item -3 is out of range"),
        (#"{"indices": [0, 3]}"#, 422, "item 3 of the batch is unlabeled"),
        (#"{"indices": [0, 4]}"#, 422, "items 0 and 4 differ in image shape"),
        (#"{"indices": []}"#, 400, "non-empty list"),
        (#"{"indices": [0], "colour": 1}"#, 400, "unknown key 'colour'"),
        (#"{"indices": ["0"]}"#, 400, "item indices are whole numbers"),
        (#"{"indices": [0], "region": 5}"#, 400, "'region' must be a string"),
        (#"{"indices": [0], "categories": [[[[0]]]]}"#, 400, "categories"),
        (#"[0, 1]"#, 400, "must be a JSON object"),
        (#"{"indices": [0"#, 400, "not valid JSON"),
        (#"{"indices": [0, 1, 2]}"#, 413, "max_batch_items"),
    ]

    @Test("batch errors: 400 bad bodies, 404 indices, 413 limits, 422 unlabeled and mixed shapes")
    func batchErrors() async throws {
        var settings = ServerSettings()
        settings.maxBatchItems = 2
        try await withServer(settings) { client in
            for (body, status, message) in Self.batchErrorCases {
                let reply = try await client.request("/v1/datasets/oai_2d/batch", method: .POST, body: Array(body.utf8))
                #expect(reply.status == status, "\(body): \(reply.text)")
                #expect(reply.errorMessage?.contains(message) == true, "\(body): \(reply.text)")
            }
        }
    }

    @Test("responses over max_response_bytes and bodies over the upload limit are 413; GET on batch is 405")
    func limits() async throws {
        var settings = ServerSettings()
        settings.maxResponseBytes = ByteSize(bytes: 1000)
        try await withServer(settings) { client in
            let big = try await client.get("/v1/datasets/oai_3d/scans/0000004_V00/image")
            #expect(big.status == 413)
            #expect(big.errorCode == "too_large")
            #expect(try await client.get("/v1/datasets/oai_2d/items/0/image?region=0:2,0:2").status == 200)
            let body = [UInt8](repeating: 0x20, count: 2 << 20)
            let huge = try await client.request("/v1/datasets/oai_2d/batch", method: .POST, body: body)
            #expect(huge.status == 413)
            let get = try await client.get("/v1/datasets/oai_2d/batch")
            #expect(get.status == 405)
            #expect(get.headers["allow"].first == "POST")
        }
    }
}
