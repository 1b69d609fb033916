import Hummingbird
import NIOCore

/// The dataset browser: plain HTML, CSS and JavaScript embedded in the binary, served at `/`.
/// They hold no data (the page reads the API, with the user's token), so they need no token.
struct UIRoutes<Context: RequestContext> {
    static var files: [(path: String, type: String, bytes: [UInt8])] {
        [
            ("ui/app.js", "text/javascript; charset=utf-8", PackageResources.app_js),
            ("ui/style.css", "text/css; charset=utf-8", PackageResources.style_css),
        ]
    }

    func register(on routes: some RouterMethods<Context>) {
        routes.get("/") { request, _ in
            _ = try request.query(known: [])
            return Self.response(PackageResources.index_html, type: "text/html; charset=utf-8")
        }
        for file in Self.files {
            routes.get(RouterPath(file.path)) { request, _ in
                _ = try request.query(known: [])
                return Self.response(file.bytes, type: file.type)
            }
        }
    }

    private static func response(_ bytes: [UInt8], type: String) -> Response {
        Response(
            status: .ok,
            // The page must not be framed by other sites, nor run scripts from anywhere else.
            headers: [
                .contentType: type, .cacheControl: "no-cache", .xContentTypeOptions: "nosniff",
                .contentSecurityPolicy: "default-src 'self'; img-src 'self' blob: data:; frame-ancestors 'none'",
            ],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}
