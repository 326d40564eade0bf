// The per-address connection cap (issue 12, finding 7): one client holding half-sent requests
// gets 503 beyond its share, while other addresses, /healthz included, are still served.

import Foundation
import Testing
@testable import HTTP
import TestSupport

@Suite(.serialized) struct PerAddressLimitTests {
    static func router() -> Router {
        var router = TestServer.basicRouter()
        router.get("/healthz", options: RouteOptions(execution: .connectionQueue)) { _, _ in .json(#"{"status":"ok"}"#) }
        return router
    }

    @Test func oneAddressBeyondItsCapGets503WhileAnotherAddressIsServed() throws {
        let metrics = MetricsRegistry()
        let cap = HTTPServer.Configuration().maxConnectionsPerAddress  // the default
        #expect(cap == 128)
        try TestServer.with({ $0.metrics = metrics }, router: Self.router()) { server in
            var held: [TestClient] = []
            for _ in 0..<cap {
                let c = try TestClient(port: server.port)
                try c.send("GET /healthz HTTP/1.1\r\nHost: x\r\n")  // a head that never ends
                held.append(c)
            }
            #expect(TestServer.eventually { server.openConnectionCount == cap })

            let extra = try TestClient(port: server.port)
            try extra.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            let refused = try extra.readResponse()
            #expect(refused.status == 503)
            #expect(refused.header("Retry-After") == "1")
            #expect(refused.header("Content-Type") == "application/json")
            #expect(refused.header("X-Request-Id") != nil)
            #expect(refused.text == #"{"error":{"code":"unavailable","message":"too many connections from this address"}}"#)
            #expect(extra.waitForClose())
            #expect(server.rejectedConnectionsPerAddress == 1)
            #expect(server.rejectedConnections == 0)
            #expect(metrics.rejectedConnections(reason: "max_connections_per_address") == 1)
            #expect(metrics.prometheusText().contains(#"http_connections_rejected_total{reason="max_connections_per_address"} 1"#))

            // Another loopback address is not affected.
            let other = try TestClient(port: server.port, source: "127.0.0.2")
            try other.send(TestClient.request("GET", "/healthz"))
            let ok = try other.readResponse()
            #expect(ok.status == 200)
            #expect(ok.text == #"{"status":"ok"}"#)

            // Closing the held connections gives the address its share back.
            held.removeAll()
            #expect(TestServer.eventually { server.openConnectionCount == 1 })
            let again = try TestClient(port: server.port)
            try again.send(TestClient.request("GET", "/hello"))
            #expect(try again.readResponse().text == "hello")
        }
    }

    @Test func theCapIsConfigurable() throws {
        try TestServer.with({ $0.maxConnectionsPerAddress = 2 }, router: Self.router()) { server in
            let a = try TestClient(port: server.port), b = try TestClient(port: server.port)
            try a.send(TestClient.request("GET", "/hello"))
            try b.send(TestClient.request("GET", "/hello"))
            #expect(try a.readResponse().text == "hello")
            #expect(try b.readResponse().text == "hello")
            let c = try TestClient(port: server.port)
            #expect(try c.readResponse().status == 503)
            #expect(try TestClient(port: server.port, source: "127.0.0.3").readResponseAfter(TestClient.request("GET", "/hello")).status == 200)
        }
    }
}

extension TestClient {
    /// Sends `request` and reads its response.
    func readResponseAfter(_ request: [UInt8]) throws -> TestResponse {
        try send(request)
        return try readResponse()
    }
}
