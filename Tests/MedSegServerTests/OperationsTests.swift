import AsyncHTTPClient
import Foundation
import Glibc
import Logging
import MedSegData
import MedSegServer
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import TestSupport
import Testing

@Suite("Operations: tokens, metrics, TLS, systemd notifications")
struct OperationsTests {
    let fixture: CatalogFixture

    init() throws {
        fixture = try CatalogFixture()
    }

    @Test("bearer tokens guard /v1 and /metrics; probes stay open; comparisons accept only exact tokens")
    func tokens() async throws {
        try await withTestServer(store: CatalogStore(fixture.catalog), tokens: ["s3cret-token", "second"]) { client in
            for path in ["/healthz", "/readyz"] { #expect(try await client.get(path).status == 200) }
            let missing = try await client.get("/v1/datasets")
            #expect(missing.status == 401)
            #expect(missing.errorCode == "unauthorized")
            #expect(missing.headers["www-authenticate"].first == "Bearer realm=\"medsegd\"")
            for header in ["Bearer s3cret-toke", "Bearer s3cret-token2", "Basic s3cret-token", "Bearer ", "s3cret-token"] {
                #expect(try await client.request("/v1/datasets", headers: [("Authorization", header)]).status == 401, "\(header)")
            }
            #expect(try await client.request("/v1/datasets", headers: [("Authorization", "Bearer s3cret-token")]).status == 200)
            #expect(try await client.request("/v1/datasets/oai_2d/items/0/image", headers: [("Authorization", "bearer second")]).status == 200)
            #expect(try await client.get("/metrics").status == 401)
            #expect(try await client.request("/metrics", headers: [("Authorization", "Bearer second")]).status == 200)
        }
    }

    @Test("tokens files: one a line, comments and blanks ignored, an empty file refused")
    func tokensFile() throws {
        let path = fixture.folder.write("tokens", "# tokens for medsegd\n\n  alpha \r\nbeta\n")
        #expect(try TokenStore.read(path).map { String(decoding: $0, as: UTF8.self) } == ["alpha", "beta"])
        let empty = fixture.folder.write("empty", "# nothing\n\n")
        #expect(throws: TokenStore.LoadError.self) { try TokenStore.read(empty) }
        #expect(throws: TokenStore.LoadError.self) { try TokenStore.read(fixture.folder.path + "/absent") }
    }

    @Test("/metrics speaks Prometheus: requests by route and status, latency histograms, bytes, cache, catalog")
    func metrics() async throws {
        try await withTestServer(store: CatalogStore(fixture.catalog)) { client in
            _ = try await client.get("/v1/datasets/oai_2d/items/0/mask")
            _ = try await client.get("/v1/datasets/oai_2d/items/0/mask")
            _ = try await client.get("/v1/datasets/nope")
            let reply = try await client.get("/metrics")
            #expect(reply.status == 200)
            #expect(reply.headers["content-type"].first?.hasPrefix("text/plain; version=0.0.4") == true)
            let text = reply.text
            for expected in [
                #"hb_requests{http_route="/v1/datasets/{name}/items/{index}/mask",http_request_method="GET",http_response_status_code="200"}"#,
                #"http_response_status_code="404""#,
                "http_server_request_duration_bucket{",
                #"medsegd_response_bytes{route="/v1/datasets/{name}/items/{index}/mask"}"#,
                #"medsegd_read_duration_bucket{route="item-mask""#,
                "medsegd_cache_hits_total", "medsegd_cache_misses_total", "medsegd_cache_bytes",
                #"medsegd_catalog_items{dataset="oai_2d"} 4.0"#, "medsegd_catalog_ready 1.0",
            ] {
                #expect(text.contains(expected), "\(expected)")
            }
        }
    }

    @Test("TLS from a certificate and key: HTTPS only")
    func tls() async throws {
        let folder = fixture.folder
        let certificate = folder.path + "/cert.pem"
        let key = folder.path + "/key.pem"
        let openssl = Process()
        openssl.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        openssl.arguments = [
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", certificate, "-days", "1",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ]
        openssl.standardOutput = FileHandle.nullDevice
        openssl.standardError = FileHandle.nullDevice
        try openssl.run()
        openssl.waitUntilExit()
        try #require(openssl.terminationStatus == 0, "openssl could not make a certificate")

        var settings = ServerSettings()
        settings.tls = TLSSettings(certificate: certificate, privateKey: key)
        try await withTestServer(store: CatalogStore(fixture.catalog), settings: settings) { client in
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(certificate))
            let https = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(tlsConfiguration: tls))
            do {
                let response = try await https.execute(HTTPClientRequest(url: "https://127.0.0.1:\(client.port)/v1/datasets"), timeout: .seconds(10))
                #expect(response.status == .ok)
                var body = try await response.body.collect(upTo: 1 << 20)
                #expect(body.readString(length: body.readableBytes)?.contains("oai_2d") == true)
                // Plain HTTP on the TLS port gets no answer.
                await #expect(throws: (any Error).self) { _ = try await client.get("/healthz") }
            } catch {
                try await https.shutdown()
                throw error
            }
            try await https.shutdown()
        }
    }

    @Test("the notify protocol: datagrams to NOTIFY_SOCKET, abstract names included")
    func notifier() throws {
        for abstract in [false, true] {
            let name = abstract ? "@medsegd-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))" : fixture.folder.path + "/notify.sock"
            let receiver = try DatagramReceiver(name)
            let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": name], logger: Logger(label: "test"))
            notifier.ready(status: "serving 4 datasets")
            notifier.reloading()
            notifier.stopping()
            #expect(try receiver.receive() == "READY=1\nSTATUS=serving 4 datasets")
            let reloading = try receiver.receive()
            #expect(reloading.hasPrefix("RELOADING=1\nMONOTONIC_USEC="))
            #expect(try receiver.receive() == "STOPPING=1")
        }
        // Without NOTIFY_SOCKET nothing is sent and nothing fails.
        SystemdNotifier(environment: [:], logger: Logger(label: "test")).ready(status: "x")
    }
}
