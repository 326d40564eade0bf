// Issue 16, slip 3: each route's own body limit is known when its head arrives. A Content-Length over
// it is answered 413 naming that limit without reading the body, and the connection closes; a chunked
// body is cut off at the same limit.

import Foundation
import Testing
@testable import HTTP
import TestSupport

@Suite struct BodyLimitTests {
    static func router() -> Router {
        var router = Router()
        router.defaultMaxBodyBytes = 1000
        let echo: Handler = { req, _ in Response(status: .ok, body: .bytes(try req.body.collect())) }
        router.post("/default", echo)
        router.post("/own", options: RouteOptions(maxBodyBytes: 4000), echo)
        var typed = RouteOptions(maxBodyBytes: 1 << 20)
        typed.maxBodyBytesByContentType["application/json"] = 1500
        router.post("/typed", options: typed, echo)
        return router
    }

    /// Sends only the head (and 3 body bytes): an answer that waited for the body would not come.
    static func refusedOnTheHead(_ port: Int, _ path: String, length: Int, type: String = "text/plain") throws -> TestResponse {
        let c = try TestClient(port: port, timeout: 10)
        try c.send("POST \(path) HTTP/1.1\r\nHost: t\r\nContent-Type: \(type)\r\nContent-Length: \(length)\r\n\r\nabc")
        let r = try c.readResponse()
        #expect(r.header("Connection")?.lowercased() == "close")
        #expect(c.waitForClose(), "closed after the 413")
        return r
    }

    @Test func aContentLengthOverTheRoutesLimitIsRefusedOnTheHeadNamingIt() throws {
        try TestServer.with({ $0.maxBodyBytes = 64 << 20 }, router: Self.router()) { server in
            let p = server.port
            let d = try Self.refusedOnTheHead(p, "/default", length: 5000)
            #expect(d.status == 413 && d.errorCode == "payload_too_large")
            #expect(d.errorMessage == "the body (Content-Length 5000) is over this route's limit of 1000 bytes", "\(d.errorMessage)")
            let o = try Self.refusedOnTheHead(p, "/own", length: 70_000_000)
            #expect(o.status == 413 && o.errorMessage.contains("limit of 4000 bytes"), "\(o.errorMessage)")
            let j = try Self.refusedOnTheHead(p, "/typed", length: 2000, type: "application/json; charset=utf-8")
            #expect(j.status == 413 && j.errorMessage.contains("limit of 1500 bytes"), "\(j.errorMessage)")
            // Unmatched paths get the router's default too (their 404 needs no body).
            #expect(try Self.refusedOnTheHead(p, "/nowhere", length: 2000).status == 413)

            // Within the limits: answered with the body.
            let c = try TestClient(port: p)
            let body = [UInt8](repeating: 65, count: 3000)
            try c.send(TestClient.request("POST", "/own", body: body))
            #expect(try c.readResponse().body == Data(body))
            try c.send(TestClient.request("POST", "/typed", headers: ["Content-Type: text/csv"], body: [UInt8](repeating: 66, count: 2000)))
            #expect(try c.readResponse().status == 200, "another type keeps the route's 1 MiB")
            try c.send(TestClient.request("POST", "/default", body: [UInt8](repeating: 67, count: 1000)))
            #expect(try c.readResponse().status == 200, "exactly the limit is fine")

            // Chunked: cut off once the chunks pass the route's limit, naming it.
            let chunked = try TestClient(port: p)
            try chunked.send("POST /default HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3e8\r\n" + String(repeating: "x", count: 1000) + "\r\n1\r\n")
            let r = try chunked.readResponse()
            #expect(r.status == 413 && r.errorMessage == "the body is over this route's limit of 1000 bytes", "\(r.errorMessage)")
        }
    }

    /// The router's default never raises the server's own limit; a route's explicit limit does.
    @Test func theServersLimitCapsTheRoutersDefault() throws {
        try TestServer.with({ $0.maxBodyBytes = 500 }, router: Self.router()) { server in
            let d = try Self.refusedOnTheHead(server.port, "/default", length: 800)
            #expect(d.status == 413 && d.errorMessage.contains("limit of 500 bytes"), "\(d.errorMessage)")
            let c = try TestClient(port: server.port)
            try c.send(TestClient.request("POST", "/own", body: [UInt8](repeating: 65, count: 800)))
            #expect(try c.readResponse().status == 200)
        }
    }

    @Test func limitsAreNamedInBinaryUnitsWhenWhole() {
        #expect(HTTPParseError.bodyTooLarge(limit: 16 << 20, declared: 70_000_000).reason
                == "the body (Content-Length 70000000) is over this route's limit of 16777216 bytes (16 MiB)")
        #expect(HTTPParseError.bodyTooLarge(limit: 1 << 30).reason == "the body is over this route's limit of 1073741824 bytes (1 GiB)")
        #expect(HTTPParseError.bodyTooLarge(limit: 1536).reason == "the body is over this route's limit of 1536 bytes")
        #expect(HTTPParseError.bodyTooLarge(limit: 2048).reason.hasSuffix("limit of 2048 bytes (2 KiB)"))
    }
}
