// Every response the server writes carries X-Request-Id (issue 12, finding 14): handler answers
// without any middleware, parser errors (400, 431, 413), timeouts (408) and the 503s of limits;
// a sane client id is echoed once the head was read.

import Foundation
import Testing
@testable import HTTP
import TestSupport

@Suite struct RequestIDTests {
    static func isGenerated(_ id: String?) -> Bool {
        guard let id else { return false }
        return id.utf8.count == 32 && id.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
    }

    @Test func parserErrorsCarryAGeneratedRequestID() throws {
        try TestServer.with(router: TestServer.basicRouter()) { server in
            let tooLarge = try TestClient(port: server.port)
            try tooLarge.send("GET /hello HTTP/1.1\r\nHost: t\r\nX-Request-Id: mine\r\nX-Big: " + String(repeating: "b", count: 20_000) + "\r\n\r\n")
            let r431 = try tooLarge.readResponse()
            #expect(r431.status == 431)
            #expect(Self.isGenerated(r431.header("X-Request-Id")), "\(r431.headers)")

            let garbage = try TestClient(port: server.port)
            try garbage.send("GARBAGE\r\n\r\n")
            let r400 = try garbage.readResponse()
            #expect(r400.status == 400)
            #expect(Self.isGenerated(r400.header("X-Request-Id")))
            #expect(r400.header("X-Request-Id") != r431.header("X-Request-Id"))
        }
    }

    @Test func errorsAfterTheHeadEchoTheClientsID() throws {
        try TestServer.with({ $0.maxBodyBytes = 100; $0.bodyReadTimeout = .milliseconds(300) }, router: TestServer.basicRouter()) { server in
            let big = try TestClient(port: server.port)
            try big.send("POST /echo HTTP/1.1\r\nHost: t\r\nX-Request-Id: client-413\r\nContent-Length: 5000\r\n\r\n")
            let r413 = try big.readResponse()
            #expect(r413.status == 413)
            #expect(r413.header("X-Request-Id") == "client-413")

            let stalled = try TestClient(port: server.port)
            try stalled.send("POST /echo HTTP/1.1\r\nHost: t\r\nX-Request-Id: client-408\r\nContent-Length: 10\r\n\r\nabc")
            let r408 = try stalled.readResponse()
            #expect(r408.status == 408)
            #expect(r408.header("X-Request-Id") == "client-408")

            let insane = try TestClient(port: server.port)
            try insane.send("POST /echo HTTP/1.1\r\nHost: t\r\nX-Request-Id: " + String(repeating: "z", count: 200) + "\r\nContent-Length: 5000\r\n\r\n")
            #expect(Self.isGenerated(try insane.readResponse().header("X-Request-Id")))
        }
    }

    @Test func headerTimeoutAndHandlerAnswersCarryOne() throws {
        try TestServer.with({ $0.headerReadTimeout = .milliseconds(300); $0.handlerTimeout = .milliseconds(200) }, router: TestServer.basicRouter()) { server in
            let slow = try TestClient(port: server.port)
            try slow.send("GET /hello HTTP/1.1\r\nHost: t\r\n")
            let r408 = try slow.readResponse()
            #expect(r408.status == 408)
            #expect(Self.isGenerated(r408.header("X-Request-Id")))

            // No RequestIDMiddleware on this router: the server still adds the id.
            let c = try TestClient(port: server.port)
            try c.send(TestClient.request("GET", "/hello", headers: ["X-Request-Id: abc-123"]))
            let ok = try c.readResponse()
            #expect(ok.text == "hello")
            #expect(ok.header("X-Request-Id") == "abc-123")
            try c.send(TestClient.request("GET", "/hello"))
            #expect(Self.isGenerated(try c.readResponse().header("X-Request-Id")))

            let late = try TestClient(port: server.port)
            try late.send(TestClient.request("GET", "/slow/1000", headers: ["X-Request-Id: late-1"]))
            let r503 = try late.readResponse()
            #expect(r503.status == 503)
            #expect(r503.header("X-Request-Id") == "late-1")
        }
    }

    @Test func overTheConnectionLimitCarriesOne() throws {
        try TestServer.with({ $0.maxConnections = 1 }, router: TestServer.basicRouter()) { server in
            let holder = try TestClient(port: server.port)
            try holder.send("GET /hello HTTP/1.1\r\n")
            #expect(TestServer.eventually { server.openConnectionCount == 1 })
            let extra = try TestClient(port: server.port)
            let r = try extra.readResponse()
            #expect(r.status == 503)
            #expect(Self.isGenerated(r.header("X-Request-Id")))
        }
    }

    @Test func middlewareKeepsTheServersID() throws {
        var router = Router()
        router.use(RequestIDMiddleware())
        router.get("/id") { _, context in .text(context.requestID) }
        try TestServer.with(router: router) { server in
            let c = try TestClient(port: server.port)
            try c.send(TestClient.request("GET", "/id", headers: ["X-Request-Id: given"]))
            let r = try c.readResponse()
            #expect(r.text == "given")
            #expect(r.headers.filter { $0.0.lowercased() == "x-request-id" }.map(\.1) == ["given"])
            try c.send(TestClient.request("GET", "/id"))
            let g = try c.readResponse()
            #expect(Self.isGenerated(g.text))
            #expect(g.header("X-Request-Id") == g.text)
        }
    }
}
