// UIRoutes: the web dashboard (issue 18), static files compiled into the binary and served under /ui/
// without an API key. The pages talk to the public REST API only, with the key the user enters
// (kept in the browser's session storage, sent as `Authorization: Bearer`, never in a URL).
import Foundation
import HTTP

/// `/ui`, `/ui/` and `/ui/{file}`: the dashboard's HTML, CSS, JavaScript and icon (Sources/Service/UI/).
/// Every answer, 404s included, carries a strict Content-Security-Policy (scripts, styles, images
/// and connections from this origin only, no inline code, images also from `blob:` URLs the pages
/// make from PNGs they fetched with the key), `X-Content-Type-Options: nosniff`, no framing and no
/// referrer. Files have a strong ETag (a `If-None-Match` hit is 304) and `Cache-Control: no-cache`,
/// so a new binary's files are picked up at once.
struct UIController: RouteCollection {
    struct File: Sendable {
        let bytes: [UInt8]
        let contentType: String
        let etag: String
    }

    static let contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
        + "connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

    /// The files, by name (what follows `/ui/`).
    static let files: [String: File] = {
        let list: [(String, [UInt8], String)] = [
            ("index.html", PackageResources.index_html, "text/html; charset=utf-8"),
            ("app.css", PackageResources.app_css, "text/css; charset=utf-8"),
            ("api.js", PackageResources.api_js, "text/javascript; charset=utf-8"),
            ("charts.js", PackageResources.charts_js, "text/javascript; charset=utf-8"),
            ("app.js", PackageResources.app_js, "text/javascript; charset=utf-8"),
            ("favicon.svg", PackageResources.favicon_svg, "image/svg+xml"),
        ]
        var out = [String: File]()
        for (name, bytes, type) in list {
            out[name] = File(bytes: bytes, contentType: type, etag: "\"\(String(fnv1a(bytes), radix: 16))-\(bytes.count)\"")
        }
        return out
    }()

    /// FNV-1a, 64 bits: the files' ETag (their content, so a rebuilt binary with other bytes has another tag).
    static func fnv1a(_ bytes: [UInt8]) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return h
    }

    func register(on r: inout Router) {
        // Never blocks (bytes already in memory): served on the connection queue, like /healthz.
        let options = RouteOptions(execution: .connectionQueue)
        // `/ui` serves the page too (its links are absolute, so no redirect is needed).
        r.get("/ui", options: options) { request, _ in Self.serve("index.html", request) }
        r.get("/ui/", options: options) { request, _ in Self.serve("index.html", request) }
        r.get("/ui/{file}", options: options) { request, _ in Self.serve(request.parameter("file") ?? "", request) }
    }

    static func serve(_ name: String, _ request: Request) -> Response {
        guard let file = files[name] else {
            return secured(HTTPError(.notFound, message: "no dashboard file \(name.prefix(100))").response)
        }
        if let tags = request.headers["If-None-Match"], tags.split(separator: ",").contains(where: { $0.trimmingCharacters(in: .whitespaces) == file.etag }) {
            var resp = secured(Response(status: HTTPStatus(304)))
            resp.headers.replaceOrAdd(name: "ETag", value: file.etag)
            return resp
        }
        var resp = secured(Response(status: .ok, body: .bytes(file.bytes)))
        resp.headers.replaceOrAdd(name: "Content-Type", value: file.contentType)
        resp.headers.replaceOrAdd(name: "ETag", value: file.etag)
        return resp
    }

    /// The security headers every /ui/ response carries.
    static func secured(_ response: Response) -> Response {
        var r = response
        r.headers.replaceOrAdd(name: "Content-Security-Policy", value: contentSecurityPolicy)
        r.headers.replaceOrAdd(name: "X-Content-Type-Options", value: "nosniff")
        r.headers.replaceOrAdd(name: "X-Frame-Options", value: "DENY")
        r.headers.replaceOrAdd(name: "Referrer-Policy", value: "no-referrer")
        r.headers.replaceOrAdd(name: "Cross-Origin-Opener-Policy", value: "same-origin")
        r.headers.replaceOrAdd(name: "Cache-Control", value: "no-cache")
        return r
    }
}
