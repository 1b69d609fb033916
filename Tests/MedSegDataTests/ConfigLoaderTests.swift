import MedSegData
import TestSupport
import Testing

@Suite("Configuration: CONFIG.md's schema, every key and every error")
struct ConfigLoaderTests {
    let folder = TemporaryDirectory()

    private func load(_ yaml: String) throws -> Configuration {
        try ConfigLoader.load(path: folder.write("medsegd.yaml", yaml))
    }

    /// Loads a config that must fail, returning its error messages.
    private func errors(_ yaml: String, file: String = "medsegd.yaml") -> [ConfigError] {
        let path = folder.write(file, yaml)
        do {
            _ = try ConfigLoader.load(path: path)
            Issue.record("config was accepted")
            return []
        } catch {
            return error.errors
        }
    }

    @Test("the example of CONFIG.md loads with every key")
    func fullExample() throws {
        let configuration = try load(
            """
            server:
              host: 0.0.0.0
              port: 9000
              cache_bytes: 512MiB
              max_batch_items: 64
              max_response_bytes: 4GiB
              tokens_file: secrets/tokens
              tls: {certificate: tls/cert.pem, private_key: tls/key.pem}
            include: [datasets.d/*.yaml]
            families:
              oai:
            \(Fixtures.oaiCategoriesYAML)
                metadata:
                  spacing: [0.3125, 0.3125, 0.7]
                  evaluator_type: SemSegEvaluator
                  test_set_metadata_pik: ""
                datasets:
                  oai_2d_train: {format: slices-2d, scan_root: /data/oai/h5_files_2d/train}
                  oai_3d_test:  {format: volumes-3d, scan_root: data/3d, metadata: {spacing: [1, 1, 2]}}
                  oai_3d_sf_test: {format: volumes-3d-singlefile, path: /data/test.h5}
                  my_custom:    {format: manifest, path: my_custom.json, categories: [{id: 0, name: bone}]}
            """)
        let server = configuration.server
        #expect(server.host == "0.0.0.0")
        #expect(server.port == 9000)
        #expect(server.cacheBytes.bytes == 512 << 20)
        #expect(server.maxBatchItems == 64)
        #expect(server.maxResponseBytes.bytes == 4 << 30)
        #expect(server.tokensFile == folder.path + "/secrets/tokens")
        #expect(server.tls == TLSSettings(certificate: folder.path + "/tls/cert.pem", privateKey: folder.path + "/tls/key.pem"))
        #expect(configuration.datasets.map(\.name) == ["my_custom", "oai_2d_train", "oai_3d_sf_test", "oai_3d_test"])

        let train = try #require(configuration.datasets.first { $0.name == "oai_2d_train" })
        #expect(train.format == .slices2D)
        #expect(train.location == "/data/oai/h5_files_2d/train")
        #expect(train.categories.map(\.id) == [.single(0), .collated([1, 2]), .single(3), .collated([4, 5])])
        #expect(train.categories[1] == CategorySpec(id: .collated([1, 2]), name: "tibial cartilage", abbreviation: "tc", color: [119, 11, 32]))
        #expect(train.evaluatorType == "SemSegEvaluator")
        #expect(train.extraMetadata.keys == ["spacing", "test_set_metadata_pik"])
        #expect(train.source.file == folder.path + "/medsegd.yaml")

        // Relative paths resolve against the config file's folder; metadata merges key by key.
        let test3D = try #require(configuration.datasets.first { $0.name == "oai_3d_test" })
        #expect(test3D.location == folder.path + "/data/3d")
        #expect(test3D.extraMetadata["spacing"] == .array([.int(1), .int(1), .int(2)]))
        #expect(test3D.extraMetadata["test_set_metadata_pik"] == .string(""))

        // A dataset's categories replace the family's whole.
        let custom = try #require(configuration.datasets.first { $0.name == "my_custom" })
        #expect(custom.categories == [CategorySpec(id: .single(0), name: "bone")])
        #expect(custom.location == folder.path + "/my_custom.json")
    }

    @Test("defaults apply when keys are left out")
    func defaults() throws {
        let configuration = try load("families: {}\n")
        #expect(configuration.server == ServerSettings())
        #expect(configuration.server.port == 8080)
        #expect(configuration.server.host == "127.0.0.1")
        #expect(try load("").datasets.isEmpty)
    }

    @Test("included files add families, in sorted order, and may not hold server keys")
    func includes() throws {
        folder.write(
            "datasets.d/b.yaml", Fixtures.config(datasets: ["b_set: {format: slices-2d, scan_root: ../b}"]).replacingOccurrences("oai:", "fam_b:"))
        folder.write(
            "datasets.d/a.yaml", Fixtures.config(datasets: ["a_set: {format: slices-2d, scan_root: ../a}"]).replacingOccurrences("oai:", "fam_a:"))
        let configuration = try load("include: [datasets.d/*.yaml]\n")
        #expect(configuration.files == [folder.path + "/medsegd.yaml", folder.path + "/datasets.d/a.yaml", folder.path + "/datasets.d/b.yaml"])
        #expect(configuration.datasets.map(\.name) == ["a_set", "b_set"])
        #expect(configuration.datasets[0].location == folder.path + "/a")

        folder.write("datasets.d/c.yaml", "server: {port: 1}\nfamilies: {}\n")
        let found = errors("include: [datasets.d/*.yaml]\n")
        #expect(found.count == 1)
        #expect(found[0].location.file == folder.path + "/datasets.d/c.yaml")
        #expect(found[0].message.contains("unknown key 'server'"))
    }

    @Test("a dataset registered twice names both files")
    func duplicateNames() throws {
        folder.write("more.yaml", Fixtures.config(datasets: ["twice: {format: slices-2d, scan_root: /b}"]))
        let found = errors("include: [more.yaml]\n" + Fixtures.config(datasets: ["twice: {format: slices-2d, scan_root: /a}"]))
        #expect(found.count == 1)
        let message = try #require(found.first?.message)
        #expect(message.contains("'twice' is registered twice"))
        #expect(message.contains(folder.path + "/medsegd.yaml:"))
        #expect(message.contains(folder.path + "/more.yaml:"))
    }

    @Test(
        "unknown keys are errors naming the key, the place and the file, at every level",
        arguments: [
            ("server: {prot: 1}\n", "unknown key 'prot' in 'server'"),
            ("server: {tls: {cert: a}}\n", "unknown key 'cert' in 'server.tls'"),
            ("serve: {}\n", "unknown key 'serve' in the main config file"),
            ("families: {f: {categories: [{id: 0, name: a}], datasets: {}, extra: 1}}\n", "unknown key 'extra' in family 'f'"),
            (
                "families: {f: {categories: [{id: 0, name: a, colour: [1, 2, 3]}], datasets: {}}}\n",
                "unknown key 'colour' in category 0 of family 'f'"
            ),
            (
                "families: {f: {categories: [{id: 0, name: a}], datasets: {d: {format: slices-2d, scanroot: /x}}}}\n",
                "unknown key 'scanroot' in dataset 'd'"
            ),
        ])
    func unknownKeys(yaml: String, expected: String) throws {
        let found = errors(yaml)
        #expect(
            found.contains { $0.message.contains(expected) && $0.location.file == folder.path + "/medsegd.yaml" && $0.location.line == 1 },
            "\(found)")
    }

    @Test(
        "categories, abbreviations and colors must be 1-to-1 and well formed",
        arguments: [
            ("[{id: 0, name: a, abbrev: x}, {id: 1, name: b}]", "category 'b' of family 'f' has no 'abbrev' but others do"),
            ("[{id: 0, name: a, color: [1, 2, 3]}, {id: 1, name: b}]", "category 'b' of family 'f' has no 'color'"),
            ("[{id: 0, name: a}, {id: 0, name: b}]", "share the id 0"),
            ("[{id: [1, 2], name: a}, {id: [1, 2], name: b}]", "share the id [1, 2]"),
            ("[{id: 0, name: a}, {id: 1, name: a}]", "category name 'a' appears twice"),
            ("[{id: 0, name: a, color: [1, 2]}]", "color of category 0 of family 'f' must be [R, G, B]"),
            ("[{id: 0, name: a, color: [1, 2, 300]}]", "must be in 0...255, not 300"),
            ("[{id: -1, name: a}]", "must be in 0...65535, not -1"),
            ("[{id: [], name: a}]", "is an empty list"),
            ("[{id: [1, 1], name: a}]", "lists a channel twice"),
            ("[{id: x, name: a}]", "must be a whole number"),
            ("[{name: a}]", "category 0 of family 'f' has no 'id'"),
            ("[]", "must be a non-empty list"),
        ])
    func categoryValidation(categories: String, expected: String) throws {
        let found = errors("families: {f: {categories: \(categories), datasets: {d: {format: slices-2d, scan_root: /x}}}}\n")
        #expect(found.contains { $0.message.contains(expected) }, "\(found)")
    }

    @Test(
        "server values are checked",
        arguments: [
            ("server: {port: 70000}\n", "server.port must be in 0...65535"),
            ("server: {port: eighty}\n", "server.port must be a whole number"),
            ("server: {cache_bytes: lots}\n", "server.cache_bytes must be a size"),
            ("server: {max_batch_items: 0}\n", "server.max_batch_items must be in 1..."),
            ("server: {tls: {certificate: a.pem}}\n", "needs both 'certificate' and 'private_key'"),
            ("server: {tls: {certificate: null, private_key: k.pem}}\n", "needs both 'certificate' and 'private_key'"),
        ])
    func serverValidation(yaml: String, expected: String) throws {
        let found = errors(yaml)
        #expect(found.contains { $0.message.contains(expected) }, "\(found)")
    }

    @Test(
        "dataset entries are checked",
        arguments: [
            ("{d: {scan_root: /x}}", "dataset 'd' has no 'format'"),
            ("{d: {format: slices-3d, scan_root: /x}}", "unknown format 'slices-3d'"),
            ("{d: {format: slices-2d}}", "needs 'scan_root'"),
            ("{d: {format: manifest, scan_root: /x}}", "takes 'path', not 'scan_root'"),
            ("{d: {format: volumes-3d, scan_root: /x, roots: [/y]}}", "'roots' applies to manifest datasets only"),
            ("{\"a/b\": {format: slices-2d, scan_root: /x}}", "may only hold letters"),
            ("{d: {format: slices-2d, scan_root: /x, metadata: {category_ids: [1]}}}", "is derived from 'categories'"),
            ("{d: {format: slices-2d, scan_root: /x, metadata: {spacing: [0, 1]}}}", "'spacing' of dataset 'd' must be a list of positive numbers"),
            ("{d: {format: slices-2d, scan_root: /x, metadata: {evaluator_type: 3}}}", "'evaluator_type' of dataset 'd' must be a string"),
        ])
    func datasetValidation(datasets: String, expected: String) throws {
        let found = errors("families: {f: {categories: [{id: 0, name: a}], datasets: \(datasets)}}\n")
        #expect(found.contains { $0.message.contains(expected) }, "\(found)")
    }

    @Test("a dataset without categories anywhere is an error")
    func missingCategories() throws {
        let found = errors("families: {f: {datasets: {d: {format: slices-2d, scan_root: /x}}}}\n")
        #expect(found.contains { $0.message.contains("dataset 'd' has no categories") })
    }

    @Test("invalid YAML gives the line; a missing file and a missing include are named")
    func unreadable() throws {
        let yaml = errors("server:\n  port: 1\n  host: [unclosed\n")
        #expect(yaml.count == 1)
        #expect(yaml.first?.message.hasPrefix("invalid YAML") == true)
        #expect(yaml.first?.location.line != nil)

        #expect(throws: ConfigErrors.self) { try ConfigLoader.load(path: folder.path + "/absent.yaml") }
        let include = errors("include: [nowhere.yaml]\n")
        #expect(include.first?.message == "included file 'nowhere.yaml' does not exist")
    }

    @Test("every error of a file is reported in one pass")
    func collectsAll() throws {
        let found = errors(
            "server: {port: -1, hots: x}\nfamilies: {f: {categories: [{id: 0, name: a}], datasets: {d: {format: nope, scan_root: /x}}}}\n")
        #expect(found.count == 3)
    }
}

@Suite("Sizes like 512MiB")
struct ByteSizeTests {
    @Test(arguments: [
        ("512MiB", 512 << 20), ("4GiB", 4 << 30), ("100MB", 100_000_000), ("1048576", 1_048_576),
        ("0", 0), ("1.5GiB", 3 << 29), ("64 KiB", 64 << 10), ("2k", 2048), ("10B", 10),
    ])
    func parses(text: String, bytes: Int) {
        #expect(ByteSize(parsing: text)?.bytes == bytes)
    }

    @Test(arguments: ["", "MiB", "-1", "12XB", "1e400GiB", "99999999999999999999"])
    func rejects(text: String) {
        #expect(ByteSize(parsing: text) == nil)
    }
}

extension String {
    func replacingOccurrences(_ target: String, _ replacement: String) -> String {
        split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
