import AsyncHTTPClient
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import MedSegData
import MedSegServer
import Metrics
import NIOCore
import NIOHTTP1
import Prometheus
import ServiceLifecycle

/// The real medsegd application on 127.0.0.1 with a free port, for the length of `body`.
func withTestServer(
    store: CatalogStore, settings: ServerSettings = ServerSettings(), tokens: [String]? = nil, _ body: (TestClient) async throws -> Void
) async throws {
    var settings = settings
    settings.host = "127.0.0.1"
    settings.port = 0
    var logger = Logger(label: "medsegd-test")
    logger.logLevel = .error
    let (ports, portContinuation) = AsyncStream<Int>.makeStream()
    let state = ServerState(settings: settings, store: store, cache: ResponseCache(budget: settings.cacheBytes.bytes), metrics: TestMetrics.shared)
    state.tokens.replace(with: tokens.map { $0.map { Array($0.utf8) } })
    let app = try MedSegServer.makeApplication(state: state, logger: logger) { port in
        portContinuation.yield(port)
    }
    let services = ServiceGroup(services: [app], logger: logger)
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await services.run() }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { throw TestServerError.didNotStart }
        let client = TestClient(port: port)
        do {
            try await body(client)
        } catch {
            await services.triggerGracefulShutdown()
            throw error
        }
        await services.triggerGracefulShutdown()
        try await group.waitForAll()
    }
}

/// The same application without a socket: requests go straight to the router
/// (HummingbirdTesting's `.router`), for route tests where no byte needs to cross a connection.
func withRouterTest(store: CatalogStore, settings: ServerSettings = ServerSettings(), _ body: (TestClient) async throws -> Void) async throws {
    let state = ServerState(settings: settings, store: store, cache: ResponseCache(budget: settings.cacheBytes.bytes), metrics: TestMetrics.shared)
    let app = Application(router: MedSegServer.makeRouter(state: state))
    // `test` wants a @Sendable closure; `body` runs inside this call, before it returns.
    nonisolated(unsafe) let body = body
    try await app.test(.router) { client in try await body(TestClient(router: client)) }
}

enum TestServerError: Error { case didNotStart }

/// swift-metrics is bootstrapped once per process: every test server shares this registry.
enum TestMetrics {
    static let shared: ServerMetrics = {
        let metrics = ServerMetrics()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: metrics.registry))
        return metrics
    }()
}

/// A real HTTP client (AsyncHTTPClient) pointed at the test server, or HummingbirdTesting's
/// router client.
struct TestClient {
    var port = 0
    var router: (any TestClientProtocol)?

    init(port: Int) {
        self.port = port
    }

    init(router: any TestClientProtocol) {
        self.router = router
    }

    struct Reply {
        var status: Int
        var headers: HTTPHeaders
        var body: [UInt8]

        var text: String { String(decoding: body, as: UTF8.self) }
        var json: JSONValue { get throws { try JSONParser.parse(body) } }

        /// The contract's error code, when the body is a JSON error.
        var errorCode: String? {
            guard case .object(let object)? = try? json, case .object(let error)? = object["error"] else { return nil }
            return error["code"]?.stringValue
        }

        var errorMessage: String? {
            guard case .object(let object)? = try? json, case .object(let error)? = object["error"] else { return nil }
            return error["message"]?.stringValue
        }
    }

    func request(_ path: String, method: HTTPMethod = .GET, headers: [(String, String)] = [], body: [UInt8]? = nil) async throws -> Reply {
        if let router {
            var fields = HTTPFields()
            for (name, value) in headers { fields.append(HTTPField(name: HTTPField.Name(name)!, value: value)) }
            let response = try await router.executeRequest(
                uri: path, method: HTTPRequest.Method(method.rawValue)!, headers: fields, body: body.map { ByteBuffer(bytes: $0) })
            var replyHeaders = HTTPHeaders()
            for field in response.headers { replyHeaders.add(name: field.name.rawName, value: field.value) }
            var bytes = response.body
            return Reply(status: Int(response.status.code), headers: replyHeaders, body: bytes.readBytes(length: bytes.readableBytes) ?? [])
        }
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        var bytes = try await response.body.collect(upTo: 512 << 20)
        return Reply(status: Int(response.status.code), headers: response.headers, body: bytes.readBytes(length: bytes.readableBytes) ?? [])
    }

    func get(_ path: String) async throws -> Reply {
        try await request(path)
    }
}
