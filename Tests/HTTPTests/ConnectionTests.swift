// Loopback tests of connection behaviour: keep-alive, pipelining, chunked in and out,
// 100-continue, 404/405/HEAD, slow handlers not stalling others.

import Foundation
import Testing
@testable import HTTP
import TestSupport

@Suite struct ConnectionTests {
    @Test func keepAliveServesSeveralRequestsOnOneConnection() throws {
        try TestServer.with(router: TestServer.basicRouter()) { server in
            let c = try TestClient(port: server.port)
            for i in 0..<3 {
                try c.send(TestClient.request("GET", "/items/\(i)?q=a%20b"))
                let r = try c.readResponse()
                #expect(r.status == 200)
                #expect(r.text == "item \(i) q=a b")
                #expect(r.header("Connection") == nil)
            }
            #expect(server.openConnectionCount == 1)
            try c.send(TestClient.request("GET", "/hello", headers: ["Connection: close"]))
            let last = try c.readResponse()
            #expect(last.header("Connection") == "close")
            #expect(c.waitForClose())
        }
    }

    @Test func http10ClosesUnlessKeepAlive() throws {
        try TestServer.with(router: TestServer.basicRouter()) { server in
            let c = try TestClient(port: server.port)
            try c.send("GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            let r = try c.readResponse()
            #expect(r.text == "hello")
            #expect(r.header("Connection") == "keep-alive")
            try c.send("GET /hello HTTP/1.0\r\n\r\n")
            #expect(try c.readResponse().status == 200)
            #expect(c.waitForClose())
        }
    }

    @Test func threePipelinedRequestsInOneWriteAnsweredInOrder() throws {
        try TestServer.with(router: TestServer.basicRouter()) { server in
            let c = try TestClient(port: server.port)
            try c.send(TestClient.request("GET", "/slow/150") + TestClient.request("POST", "/echo", body: Array("second".utf8))
                + TestClient.request("GET", "/slow/0"))
            #expect(try c.readResponse().text == "slow 150")
            #expect(try c.readResponse().text == "second")
            #expect(try c.readResponse().text == "slow 0")
        }
    }

    /// Pipelined input beyond `maxPipelinedBytes` while a handler runs pauses reading (the fd leaves
    /// its event loop's epoll set) and resumes once the answer is out: every request is answered, in order.
    @Test func readingPausesAtThePipelineLimitAndResumes() throws {
        try TestServer.with({ $0.maxPipelinedBytes = 4096 }, router: TestServer.basicRouter()) { server in
            let c = try TestClient(port: server.port, timeout: 20)
            var batch = TestClient.request("GET", "/slow/200")
            for i in 0..<200 { batch += TestClient.request("POST", "/echo", body: Array("body-\(i)-".utf8) + [UInt8](repeating: 0x61, count: 200)) }
            try c.send(batch)  // ~60 KiB: far over the 4 KiB read-ahead
            #expect(try c.readResponse().text == "slow 200")
            for i in 0..<200 {
                let r = try c.readResponse()
                #expect(r.status == 200)
                #expect(r.text.hasPrefix("body-\(i)-"))
            }
            try c.send(TestClient.request("GET", "/hello"))
            #expect(try c.readResponse().text == "hello")
        }
    }

    /// More connections than event loops, each with keep-alive requests interleaved with the others':
    /// every connection gets its own answers.
    @Test func manyKeepAliveConnectionsAcrossEventLoops() throws {
        try TestServer.with(router: TestServer.basicRouter()) { server in
            let clients = try (0..<12).map { _ in try TestClient(port: server.port, timeout: 20) }
            for round in 0..<20 {
                for (k, c) in clients.enumerated() { try c.send(TestClient.request("GET", "/items/\(k)-\(round)")) }
                for (k, c) in clients.enumerated() { #expect(try c.readResponse().text == "item \(k)-\(round) q=-") }
            }
            #expect(server.openConnectionCount == 12)
        }
    }

    @Test func chunkedRequestAndChunkedResponse() throws {
        var router = TestServer.basicRouter()
        router.get("/count/{n}") { req, _ in
            let n = Int(req.parameter("n")!)!
            return .stream { w in for i in 0..<n { try w.write("line \(i)\n") } }
        }
        try TestServer.with(router: router) { server in
            let c = try TestClient(port: server.port)
            try c.send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n")
            usleep(50_000)
            try c.send("3;x=y\r\nefg\r\n0\r\nX-Trailer: 1\r\n\r\n")
            let echoed = try c.readResponse()
            #expect(echoed.status == 200)
            #expect(echoed.text == "abcdefg")
            try c.send(TestClient.request("GET", "/count/100"))
            let streamed = try c.readResponse()
            #expect(streamed.header("Transfer-Encoding") == "chunked")
            #expect(streamed.text.split(separator: "\n").count == 100)
            // The connection is still usable after a chunked response.
            try c.send(TestClient.request("GET", "/hello"))
            #expect(try c.readResponse().text == "hello")
        }
    }

    @Test func expectContinue() throws {
        try TestServer.with(router: TestServer.basicRouter()) { server in
            let c = try TestClient(port: server.port)
            try c.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
            let interim = try c.readResponse()
            #expect(interim.status == 100)
            try c.send("hello")
            let final = try c.readResponse()
            #expect(final.status == 200)
            #expect(final.text == "hello")
        }
    }

    @Test func expectContinueRefusedWhenTooLarge() throws {
        try TestServer.with({ $0.maxBodyBytes = 10 }, router: TestServer.basicRouter()) { server in
            let c = try TestClient(port: server.port)
            try c.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n")
            #expect(try c.readResponse().status == 413)
            #expect(c.waitForClose())
        }
    }

    @Test func notFoundMethodNotAllowedAndHead() throws {
        try TestServer.with(router: TestServer.basicRouter()) { server in
            let c = try TestClient(port: server.port)
            try c.send(TestClient.request("GET", "/missing"))
            let nf = try c.readResponse()
            #expect(nf.status == 404)
            #expect(nf.text.contains(#""code":"not_found""#))
            try c.send(TestClient.request("DELETE", "/hello"))
            let na = try c.readResponse()
            #expect(na.status == 405)
            #expect(na.header("Allow") == "GET, HEAD")
            try c.send(TestClient.request("HEAD", "/hello"))
            let head = try c.readResponse(head: true)
            #expect(head.status == 200)
            #expect(head.header("Content-Length") == "5")
            try c.send(TestClient.request("GET", "/hello"))
            #expect(try c.readResponse().text == "hello")  // no stray HEAD body on the wire
        }
    }

    @Test func slowHandlerDoesNotStallOtherConnections() throws {
        try TestServer.with(router: TestServer.basicRouter()) { server in
            let slow = try TestClient(port: server.port)
            try slow.send(TestClient.request("GET", "/slow/2000"))
            usleep(50_000)
            let fast = try TestClient(port: server.port)
            let start = Date()
            try fast.send(TestClient.request("GET", "/hello"))
            #expect(try fast.readResponse().text == "hello")
            #expect(Date().timeIntervalSince(start) < 1.5)
            #expect(try slow.readResponse().text == "slow 2000")
        }
    }

    @Test func idleKeepAliveConnectionIsClosed() throws {
        try TestServer.with({ $0.idleTimeout = .milliseconds(300) }, router: TestServer.basicRouter()) { server in
            let c = try TestClient(port: server.port)
            try c.send(TestClient.request("GET", "/hello"))
            _ = try c.readResponse()
            #expect(c.waitForClose())
            #expect(TestServer.eventually { server.openConnectionCount == 0 })
        }
    }
}

@Suite struct ListenerTests {
    @Test func dualStackListenerAcceptsIPv4AndReportsItsPort() throws {
        try TestServer.with({ $0.host = "::" }, router: TestServer.basicRouter()) { server in
            #expect(server.port > 0)
            let c = try TestClient(port: server.port)
            try c.send(TestClient.request("GET", "/hello"))
            #expect(try c.readResponse().text == "hello")
        }
    }

    @Test func inlineRouteAnswersWhileEveryHandlerThreadIsBusy() throws {
        var router = TestServer.basicRouter()
        router.get("/healthz", options: RouteOptions(execution: .connectionQueue)) { _, _ in .json(#"{"status":"ok"}"#) }
        try TestServer.with({ $0.handlerThreads = 2 }, router: router) { server in
            let busy = try (0..<2).map { _ in try TestClient(port: server.port) }
            for c in busy { try c.send(TestClient.request("GET", "/slow/1500")) }
            usleep(100_000)
            let probe = try TestClient(port: server.port, timeout: 1)
            try probe.send(TestClient.request("GET", "/healthz"))
            #expect(try probe.readResponse().text == #"{"status":"ok"}"#)
            for c in busy { #expect(try c.readResponse().status == 200) }
        }
    }
}
