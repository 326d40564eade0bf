// Every malformed case answered with its status, the connection closed, and the server still
// serving others.

import Foundation
import Testing
@testable import HTTP
import TestSupport

@Suite struct MalformedRequestTests {
    static let cases: [(name: String, raw: String, status: Int)] = [
        ("malformed request line", "GARBAGE\r\n\r\n", 400),
        ("malformed header line", "GET /hello HTTP/1.1\r\nHost: t\r\nNo colon here\r\n\r\n", 400),
        ("space before colon", "GET /hello HTTP/1.1\r\nHost : t\r\n\r\n", 400),
        ("obs-fold", "GET /hello HTTP/1.1\r\nHost: t\r\nX: a\r\n\tb\r\n\r\n", 400),
        ("bare LF", "GET /hello HTTP/1.1\nHost: t\n\n", 400),
        ("missing Host", "GET /hello HTTP/1.1\r\n\r\n", 400),
        ("CL and TE (smuggling)", "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        ("two different CL (smuggling)", "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde", 400),
        ("bad chunk size", "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n", 400),
        ("header section too large", "GET /hello HTTP/1.1\r\nHost: t\r\nX-Big: " + String(repeating: "b", count: 20_000) + "\r\n\r\n", 431),
        ("too many header fields", "GET /hello HTTP/1.1\r\nHost: t\r\n" + (0..<150).map { "X-\($0): v\r\n" }.joined() + "\r\n", 431),
        ("body over limit (CL)", "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4097\r\n\r\n", 413),
        ("body over limit (chunked)", "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n1000\r\n" + String(repeating: "a", count: 4096) + "\r\n1\r\na\r\n0\r\n\r\n", 413),
        ("unknown transfer coding", "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        ("HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
        ("unsupported version", "GET /hello HTTP/3.0\r\nHost: t\r\n\r\n", 505),
        ("unsupported expectation", "POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\na", 417),
        ("bad percent-encoding", "GET /hel%zzlo HTTP/1.1\r\nHost: t\r\n\r\n", 400),
        ("two Authorization headers", "GET /hello HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer good\r\nAuthorization: Bearer bad\r\n\r\n", 400),
        ("two Host headers", "GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ]

    @Test(arguments: 0..<cases.count)
    func rejectedAndClosedWhileOthersAreServed(index: Int) throws {
        let c = Self.cases[index]
        try TestServer.with({ $0.maxBodyBytes = 4096 }, router: TestServer.basicRouter()) { server in
            let bystander = try TestClient(port: server.port)
            try bystander.send(TestClient.request("GET", "/hello"))
            #expect(try bystander.readResponse().status == 200)

            let bad = try TestClient(port: server.port)
            try bad.send(c.raw)
            let r = try bad.readResponse()
            #expect(r.status == c.status, "\(c.name)")
            #expect(r.header("Connection") == "close", "\(c.name)")
            #expect(r.text.contains(#"{"error":{"code":"#), "\(c.name)")
            #expect(r.header("X-Request-Id") != nil, "\(c.name): no X-Request-Id")
            #expect(bad.waitForClose(), "\(c.name): connection left open")

            try bystander.send(TestClient.request("GET", "/hello"))
            #expect(try bystander.readResponse().text == "hello", "\(c.name)")
            let fresh = try TestClient(port: server.port)
            try fresh.send(TestClient.request("GET", "/hello"))
            #expect(try fresh.readResponse().status == 200)
        }
    }

    @Test func duplicateAuthorizationIsRefusedNamingTheHeader() throws {
        var router = Router()
        router.get("/whoami") { req, _ in .text(req.headers["Authorization"] ?? "-") }
        try TestServer.with(router: router) { server in
            for pair in [("Authorization", "Authorization"), ("authorization", "AUTHORIZATION"), ("Proxy-Authorization", "Proxy-Authorization")] {
                let c = try TestClient(port: server.port)
                try c.send("GET /whoami HTTP/1.1\r\nHost: t\r\n\(pair.0): Bearer good\r\n\(pair.1): Bearer bad\r\n\r\n")
                let r = try c.readResponse()
                #expect(r.status == 400)
                let name = pair.0.lowercased() == "authorization" ? "Authorization" : "Proxy-Authorization"
                #expect(r.text == #"{"error":{"code":"bad_request","message":"more than one \#(name) header"}}"#, "\(r.text)")
            }
            let one = try TestClient(port: server.port)
            try one.send(TestClient.request("GET", "/whoami", headers: ["Authorization: Bearer good"]))
            #expect(try one.readResponse().text == "Bearer good")
        }
    }

    @Test func rejectionAfterValidPipelinedRequestsKeepsTheirResponses() throws {
        try TestServer.with(router: TestServer.basicRouter()) { server in
            let c = try TestClient(port: server.port)
            try c.send(TestClient.request("GET", "/hello") + Array("BROKEN LINE\r\n\r\n".utf8))
            #expect(try c.readResponse().text == "hello")
            #expect(try c.readResponse().status == 400)
            #expect(c.waitForClose())
        }
    }
}
