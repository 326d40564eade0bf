// Router and middleware tests that need no socket.

import Logging
import Testing
@testable import HTTP

@Suite struct RouterTests {
    func request(_ method: HTTPMethod, _ target: String, headers: [(String, String)] = []) -> (Request, Router.Resolution, Router) {
        var router = Router()
        router.get("/v1/models/{id}") { req, ctx in .text("get \(try req.pathParameter("id")) \(ctx.route!)") }
        // A handler asking for a parameter its template lacks (a wiring mistake) answers 404, not a trap.
        router.get("/v1/models") { req, _ in .text(try req.pathParameter("id")) }
        router.delete("/v1/models/{id}") { _, _ in Response(status: .noContent) }
        router.post("/v1/models/{id}/train") { _, _ in throw HTTPError(.conflict, code: "busy", message: "already training") }
        router.get("/boom") { _, _ in struct Boom: Error {}; throw Boom() }
        var raw = Array("\(method) \(target) HTTP/1.1\r\nHost: h\r\n".utf8)
        for (n, v) in headers { raw += Array("\(n): \(v)\r\n".utf8) }
        raw += Array("\r\n".utf8)
        let head = parseAll(raw).heads[0]
        let resolution = router.resolve(method: head.method, rawPath: head.rawPath)
        return (Request(head: head, pathParameters: resolution.parameters), resolution, router)
    }

    func respond(_ method: HTTPMethod, _ target: String, headers: [(String, String)] = [], middleware: [any Middleware] = []) -> Response {
        var (req, res, router) = request(method, target, headers: headers)
        for m in middleware { router.use(m) }
        return router.respond(to: req, context: RequestContext(route: res.template, logger: Logger(label: "t")), resolution: res)
    }

    func body(_ r: Response) -> String {
        if case .bytes(let b) = r.body { return String(decoding: b, as: UTF8.self) }
        return ""
    }

    @Test func parametersArePercentDecodedPerSegment() {
        let r = respond(.get, "/v1/models/a%2Fb%20c")
        #expect(r.status == .ok)
        #expect(body(r) == "get a/b c /v1/models/{id}")
    }

    @Test func missingPathParameterIs404JSON() {
        let r = respond(.get, "/v1/models")
        #expect(r.status == .notFound)
        #expect(body(r) == #"{"error":{"code":"not_found","message":"/v1/models has no {id}"}}"#)
    }

    @Test func notFoundAndMethodNotAllowed() {
        #expect(respond(.get, "/v1/nothing").status == .notFound)
        let r = respond(.put, "/v1/models/7")
        #expect(r.status == .methodNotAllowed)
        #expect(r.headers["Allow"] == "GET, DELETE, HEAD")
        #expect(body(r).contains(#""code":"method_not_allowed""#))
    }

    @Test func headUsesGetRoute() {
        let (_, res, _) = request(.head, "/v1/models/3")
        #expect(res.template == "/v1/models/{id}")
    }

    @Test func errorsBecomeJSON() {
        let conflict = respond(.post, "/v1/models/1/train")
        #expect(conflict.status == .conflict)
        #expect(body(conflict) == #"{"error":{"code":"busy","message":"already training"}}"#)
        let boom = respond(.get, "/boom")
        #expect(boom.status == .internalServerError)
        #expect(body(boom) == #"{"error":{"code":"internal_error","message":"internal error"}}"#)
    }

    @Test func requestIDEchoedOrGenerated() {
        let echoed = respond(.get, "/v1/models/1", headers: [("X-Request-Id", "abc-123")], middleware: [RequestIDMiddleware()])
        #expect(echoed.headers["X-Request-Id"] == "abc-123")
        let generated = respond(.get, "/v1/models/1", middleware: [RequestIDMiddleware()])
        #expect(generated.headers["X-Request-Id"]?.count == 32)
    }

    @Test func metricsCountByRouteAndStatus() {
        let registry = MetricsRegistry()
        let mw: [any Middleware] = [MetricsMiddleware(registry: registry)]
        _ = respond(.get, "/v1/models/1", middleware: mw)
        _ = respond(.get, "/v1/models/2", middleware: mw)
        _ = respond(.get, "/nope", middleware: mw)
        #expect(registry.requestCount(method: "GET", route: "/v1/models/{id}", status: 200) == 2)
        #expect(registry.requestCount(method: "GET", route: "unmatched", status: 404) == 1)
        let text = registry.prometheusText()
        #expect(text.contains(#"http_requests_total{method="GET",route="/v1/models/{id}",status="200"} 2"#))
        #expect(text.contains(#"http_request_duration_seconds_count{method="GET",route="/v1/models/{id}"} 2"#))
        #expect(text.contains("# TYPE http_request_duration_seconds histogram"))
    }
}
