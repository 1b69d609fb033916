import HDF5
import Logging
import MedSegData
import MedSegServer
import NIOHTTP1
import TestSupport
import Testing

/// A folder with one dataset of each format, and the catalog registered from it.
struct CatalogFixture {
    let folder = TemporaryDirectory()
    let catalog: Catalog

    init() throws {
        let train = folder.folder("2d")
        for name in ["0000002_V00-Aug00_001", "0000001_V00-Aug00_002", "0000001_V00-Aug00_001", "0000001_V00-Aug01_001"] {
            try Fixtures.writeSlice(in: train, name, labeled: name != "0000002_V00-Aug00_001")
        }
        let volumes = folder.folder("3d")
        try Fixtures.writeVolume(into: HDF5File.create(volumes + "/0000003_V01.h5"), shape: [4, 4, 5])
        try Fixtures.writeVolume(into: HDF5File.create(folder.file("single.h5")), group: "0000004_V00", shape: [4, 4, 2])
        folder.write("custom/manifest.json", #"[{"file_name": "a.im", "scan_id": "c1", "subject_id": 5, "note": "kept"}]"#)
        let path = folder.write(
            "medsegd.yaml",
            Fixtures.config(datasets: [
                "oai_2d: {format: slices-2d, scan_root: 2d}",
                "oai_3d: {format: volumes-3d, scan_root: 3d}",
                "oai_3d_sf: {format: volumes-3d-singlefile, path: single.h5}",
                "custom: {format: manifest, path: custom/manifest.json}",
            ]))
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        catalog = CatalogLoader.load(try ConfigLoader.load(path: path), logger: logger)
    }
}

@Suite("Catalog routes, through the router")
struct CatalogRoutesTests {
    let fixture: CatalogFixture

    init() throws {
        fixture = try CatalogFixture()
    }

    private func withServer(_ body: (TestClient) async throws -> Void) async throws {
        try await withRouterTest(store: CatalogStore(fixture.catalog), body)
    }

    @Test("health and readiness")
    func operations() async throws {
        try await withServer { client in
            #expect(try await client.get("/healthz").status == 200)
            let ready = try await client.get("/readyz")
            #expect(ready.status == 200)
            guard case .object(let body) = try ready.json else {
                Issue.record("not an object")
                return
            }
            #expect(body["status"] == .string("ready") && body["datasets"] == .int(4) && body.keys.count == 2)
        }
    }

    @Test("before the catalog is loaded, /readyz and /v1 answer 503 not_ready; /healthz answers")
    func notReady() async throws {
        try await withRouterTest(store: CatalogStore()) { client in
            #expect(try await client.get("/healthz").status == 200)
            for path in ["/readyz", "/v1/datasets", "/v1/datasets/x/dicts"] {
                let reply = try await client.get(path)
                #expect(reply.status == 503)
                #expect(reply.errorCode == "not_ready")
            }
        }
    }

    @Test("GET /v1/datasets lists summaries sorted by name")
    func list() async throws {
        try await withServer { client in
            let reply = try await client.get("/v1/datasets")
            #expect(reply.status == 200)
            #expect(reply.headers["content-type"].first == "application/json; charset=utf-8")
            #expect(
                reply.text == """
                    {"datasets":[{"name":"custom","format":"manifest","num_items":1,"num_scans":1,"num_subjects":1},\
                    {"name":"oai_2d","format":"slices-2d","num_items":4,"num_scans":2,"num_subjects":2},\
                    {"name":"oai_3d","format":"volumes-3d","num_items":1,"num_scans":1,"num_subjects":1},\
                    {"name":"oai_3d_sf","format":"volumes-3d-singlefile","num_items":1,"num_scans":1,"num_subjects":1}]}

                    """, "every JSON body ends its line")
        }
    }

    @Test("a dataset's summary carries its metadata; /metadata is the MetadataCatalog entry")
    func metadata() async throws {
        try await withServer { client in
            let root = fixture.folder.path + "/2d"
            let expected = """
                {"scan_root":"\(root)","category_ids":[0,[1,2],3,[4,5]],\
                "categories":["femoral cartilage","tibial cartilage","patellar cartilage","meniscus"],\
                "category_abbreviations":["fc","tc","pc","men"],\
                "category_colors":[[220,20,60],[119,11,32],[0,0,142],[0,0,230]],\
                "category_id_to_contiguous_id":[[0,0],[[1,2],1],[3,2],[[4,5],3]],\
                "evaluator_type":"SemSegEvaluator","spacing":[0.3125,0.3125,0.7]}
                """
            let metadata = try await client.get("/v1/datasets/oai_2d/metadata").text
            #expect(metadata == expected + "\n")
            let summary = try await client.get("/v1/datasets/oai_2d").text
            #expect(summary == #"{"name":"oai_2d","format":"slices-2d","num_items":4,"num_scans":2,"num_subjects":2,"metadata":"# + expected + "}\n")
            let pretty = try await client.get("/v1/datasets/oai_2d/metadata?pretty=1").text
            #expect(pretty.hasPrefix("{\n  \"scan_root\": "))
            #expect(pretty.hasSuffix("\n}\n"))
        }
    }

    @Test("dicts stream in catalog order, filtered and paged")
    func dicts() async throws {
        try await withServer { client in
            let root = fixture.folder.path + "/2d"
            let all = try await client.get("/v1/datasets/oai_2d/dicts")
            #expect(all.status == 200)
            #expect(all.headers["x-total-count"].first == "4")
            guard case .array(let dicts) = try all.json else {
                Issue.record("not an array")
                return
            }
            #expect(
                dicts.compactMap { $0.objectValue?["file_name"]?.stringValue }
                    == [
                        "0000001_V00-Aug00_001.im", "0000001_V00-Aug00_002.im", "0000001_V00-Aug01_001.im", "0000002_V00-Aug00_001.im",
                    ].map { root + "/" + $0 })
            #expect(
                dicts[0].objectValue?.keys == [
                    "file_name", "sem_seg_file", "scan_id", "subject_id", "time_point", "slice_id", "scan_num_slices", "aug",
                ])
            #expect(dicts[3].objectValue?["sem_seg_file"] == nil)
            #expect(dicts[0].objectValue?["scan_num_slices"] == .int(2))
            #expect(dicts[2].objectValue?["scan_num_slices"] == .int(1))

            func count(_ query: String) async throws -> Int {
                try await client.get("/v1/datasets/oai_2d/dicts?\(query)").json.arrayValue?.count ?? -1
            }
            #expect(try await count("scan_id=0000001_V00") == 3)
            #expect(try await count("scan_id=0000001_V00&aug=1") == 1)
            #expect(try await count("subject_id=2") == 1)
            #expect(try await count("time_point=1") == 0)
            #expect(try await count("scan_id=nope") == 0)
            #expect(try await count("offset=1&limit=2") == 2)
            #expect(try await count("offset=3&limit=5") == 1)
            #expect(try await count("offset=10") == 0)
            #expect(try await count("limit=0") == 0)
            let paged = try await client.get("/v1/datasets/oai_2d/dicts?offset=1&limit=1").json
            #expect(paged.arrayValue?.first?.objectValue?["slice_id"] == .int(2))

            let manifest = try await client.get("/v1/datasets/custom/dicts").text
            #expect(manifest == #"[{"file_name":"\#(fixture.folder.path)/custom/a.im","scan_id":"c1","subject_id":5,"note":"kept"}]"# + "\n")
            let singleFile = try await client.get("/v1/datasets/oai_3d_sf/dicts").json.arrayValue?.first?.objectValue
            #expect(singleFile?.keys == ["file_name", "sem_seg_file", "scan_id", "subject_id", "time_point", "image_size", "singlefile_path"])
            #expect(singleFile?["image_size"] == .array([.int(4), .int(4), .int(2)]))
        }
    }

    @Test("scans list volumes by augmentation with inclusive item ranges")
    func scans() async throws {
        try await withServer { client in
            let scans2D = try await client.get("/v1/datasets/oai_2d/scans").text
            #expect(
                scans2D == """
                    [{"scan_id":"0000001_V00","subject_id":1,"time_point":0,"volumes":[{"aug":0,"num_slices":2,"items":[0,1]},\
                    {"aug":1,"num_slices":1,"items":[2,2]}]},\
                    {"scan_id":"0000002_V00","subject_id":2,"time_point":0,"volumes":[{"aug":0,"num_slices":1,"items":[3,3]}]}]

                    """)
            let scans3D = try await client.get("/v1/datasets/oai_3d/scans").text
            #expect(
                scans3D == """
                    [{"scan_id":"0000003_V01","subject_id":3,"time_point":1,"volumes":[{"aug":0,"num_slices":5,"items":[0,0]}]}]

                    """)
        }
    }

    @Test(
        "errors are JSON with the contract's codes",
        arguments: [
            ("/v1/datasets/nope", 404, "not_found"),
            ("/v1/datasets/nope/dicts", 404, "not_found"),
            ("/v1/datasets/..%2F..%2Fetc/metadata", 404, "not_found"),
            ("/v1/datasets/oai_2d/dicts?offset=-1", 400, "bad_request"),
            ("/v1/datasets/oai_2d/dicts?limit=ten", 400, "bad_request"),
            ("/v1/datasets/oai_2d/dicts?subject_id=1.5", 400, "bad_request"),
            ("/v2/datasets", 404, "not_found"),
        ])
    func errors(path: String, status: Int, code: String) async throws {
        try await withServer { client in
            let reply = try await client.get(path)
            #expect(reply.status == status)
            #expect(reply.errorCode == code)
            #expect(reply.headers["content-type"].first == "application/json; charset=utf-8")
            #expect(!reply.text.contains(fixture.folder.path))
        }
    }

    @Test("an unknown dataset's 404 lists the registered names")
    func unknownDataset() async throws {
        try await withServer { client in
            let reply = try await client.get("/v1/datasets/oai_9d")
            #expect(reply.errorMessage == "dataset 'oai_9d' is not registered; registered: custom, oai_2d, oai_3d, oai_3d_sf")
        }
    }

    @Test("a wrong method is 405 with Allow; HEAD answers every GET with its headers and no body")
    func methods() async throws {
        try await withServer { client in
            for method in [HTTPMethod.POST, .PUT, .DELETE, .PATCH] {
                let reply = try await client.request("/v1/datasets/oai_2d/metadata", method: method)
                #expect(reply.status == 405)
                #expect(reply.errorCode == "method_not_allowed")
                #expect(reply.headers["allow"].first == "GET, HEAD")
            }
            for path in [
                "/healthz", "/readyz", "/v1/datasets", "/v1/datasets/oai_2d", "/v1/datasets/oai_2d/metadata",
                "/v1/datasets/oai_2d/dicts", "/v1/datasets/oai_2d/scans",
            ] {
                let get = try await client.get(path)
                let head = try await client.request(path, method: .HEAD)
                #expect(head.status == 200, "\(path)")
                #expect(head.body.isEmpty)
                #expect(head.headers["content-type"] == get.headers["content-type"])
                #expect(head.headers["content-length"] == get.headers["content-length"])
            }
        }
    }
}
