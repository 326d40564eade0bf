// HTTPS over real sockets: curl and Python's ssl module complete requests over TLS 1.3, a client
// capped at TLS 1.1 is refused, certificates reload (API and SIGHUP) without dropping open
// connections, streaming works both ways, a stalled handshake meets the header timeout, and
// shutdown closes TLS connections within its deadline.

import CSSL
import Foundation
import Synchronization
import Testing
@testable import HTTP
#if canImport(Glibc)
import Glibc
import TestSupport
#endif

@Suite(.serialized) struct TLSTests {
    /// A server on a self-signed certificate for the duration of `body`.
    static func withTLSServer(_ configure: (inout HTTPServer.Configuration) -> Void = { _ in }, router: Router = TestServer.basicRouter(),
                              _ body: (HTTPServer, TestCertificate, String) throws -> Void) throws {
        let dir = try TLSFixtures.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cert = try TLSFixtures.selfSigned(in: dir, name: "server")
        try TestServer.with({ $0.tls = cert.configuration; configure(&$0) }, router: router) { server in
            try body(server, cert, dir)
        }
    }

    @Test func curlCompletesARequestOverTLS13() throws {
        try Self.withTLSServer { server, cert, _ in
            let r = try TLSFixtures.run("curl", [
                "-sS", "-v", "--tlsv1.3", "--tls-max", "1.3", "--cacert", cert.certificatePath,
                "--resolve", "localhost:\(server.port):127.0.0.1", "-w", "\n%{http_code}",
                "https://localhost:\(server.port)/items/7?q=tls"])
            #expect(r.status == 0, "curl: \(r.stderr)")
            #expect(r.stdout == "item 7 q=tls\n200")
            #expect(r.stderr.contains("SSL connection using TLSv1.3"), "\(r.stderr)")
        }
    }

    @Test func pythonSSLCompletesARequestOverTLS13() throws {
        let program = """
        import socket, ssl, sys, hashlib
        ctx = ssl.create_default_context(cafile=sys.argv[2])
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(b"POST /echo HTTP/1.1\\r\\nHost: localhost\\r\\nContent-Length: 11\\r\\nConnection: close\\r\\n\\r\\nhello, tls!")
                data = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk: break
                    data += chunk
                print(s.version())
                print(hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest())
                head, _, body = data.partition(b"\\r\\n\\r\\n")
                print(head.split(b"\\r\\n")[0].decode())
                print(body.decode())
        """
        try Self.withTLSServer { server, cert, _ in
            let r = try TLSFixtures.python(program, [String(server.port), cert.certificatePath])
            #expect(r.status == 0, "python: \(r.stderr)")
            let lines = r.stdout.split(separator: "\n").map(String.init)
            #expect(lines == ["TLSv1.3", cert.sha256, "HTTP/1.1 200 OK", "hello, tls!"], "\(r.stdout) \(r.stderr)")
        }
    }

    @Test func tls12IsAcceptedAndTLS11IsRefused() throws {
        // The client may offer TLS 1.0–1.1 (OPENSSL_CONF=/dev/null and SECLEVEL 0 lift the system
        // floor on the client side), so a refusal must come from the server: its protocol_version alert.
        let program = """
        import socket, ssl, sys
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        try:
            with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10) as raw:
                with ctx.wrap_socket(raw) as s:
                    print("connected", s.version())
        except ssl.SSLError as e:
            print("refused", e.reason)
        """
        try Self.withTLSServer { server, cert, _ in
            let r = try TLSFixtures.python(program, [String(server.port)], environment: ["OPENSSL_CONF": "/dev/null"])
            #expect(r.status == 0, "python: \(r.stderr)")
            #expect(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "refused TLSV1_ALERT_PROTOCOL_VERSION", "\(r.stdout) \(r.stderr)")

            let s = try TLSFixtures.run("openssl", ["s_client", "-connect", "127.0.0.1:\(server.port)", "-tls1_1",
                                                    "-cipher", "DEFAULT:@SECLEVEL=0"], environment: ["OPENSSL_CONF": "/dev/null"])
            #expect(s.status != 0)
            #expect((s.stdout + s.stderr).contains("alert protocol version"), "\(s.stdout) \(s.stderr)")

            let c = try TestClient(port: server.port)
            try c.startTLS(caFile: cert.certificatePath, maxVersion: TLS1_2_VERSION)
            #expect(c.tlsVersion == "TLSv1.2")
            try c.send(TestClient.request("GET", "/hello"))
            #expect(try c.readResponse().text == "hello")
            #expect(TestServer.eventually { server.openConnectionCount == 1 })  // the refused ones are gone
        }
    }

    @Test func reloadKeepsOpenConnectionsAndServesTheNewCertificate() throws {
        try Self.withTLSServer { server, first, dir in
            #expect(server.tlsCertificateSHA256 == first.sha256)
            let before = try TestClient(port: server.port)
            try before.startTLS(caFile: first.certificatePath)
            try before.send(TestClient.request("GET", "/hello"))
            #expect(try before.readResponse().text == "hello")
            #expect(before.peerCertificateSHA256 == first.sha256)

            // New files at the same paths, then the reload.
            let second = try TLSFixtures.selfSigned(in: dir, name: "second")
            #expect(second.sha256 != first.sha256)
            try Self.replace(first, with: second)
            #expect(try server.reloadTLS() == second.sha256)
            #expect(server.tlsCertificateSHA256 == second.sha256)

            // The connection made before the reload still answers (keep-alive) on its old session.
            try before.send(TestClient.request("GET", "/items/2"))
            #expect(try before.readResponse().text == "item 2 q=-")
            #expect(before.peerCertificateSHA256 == first.sha256)

            let after = try TestClient(port: server.port)
            try after.startTLS(caFile: second.certificatePath)
            #expect(after.peerCertificateSHA256 == second.sha256)
            try after.send(TestClient.request("GET", "/hello"))
            #expect(try after.readResponse().text == "hello")

            // A broken certificate file: the reload fails and the current certificate stays.
            try "not a certificate".write(toFile: first.certificatePath, atomically: true, encoding: .utf8)
            #expect(throws: TLSError.self) { try server.reloadTLS() }
            #expect(server.tlsCertificateSHA256 == second.sha256)
            let third = try TestClient(port: server.port)
            try third.startTLS(caFile: second.certificatePath)
            #expect(third.peerCertificateSHA256 == second.sha256)
            try before.send(TestClient.request("GET", "/hello"))
            #expect(try before.readResponse().text == "hello")
        }
    }

    @Test func sighupReloadsTheCertificate() throws {
        try Self.withTLSServer { server, first, dir in
            let source = server.reloadTLSOnSignal(SIGHUP)
            defer { source.cancel() }
            let open = try TestClient(port: server.port)
            try open.startTLS(caFile: first.certificatePath)
            let second = try TLSFixtures.selfSigned(in: dir, name: "second")
            try Self.replace(first, with: second)
            kill(getpid(), SIGHUP)
            #expect(TestServer.eventually { server.tlsCertificateSHA256 == second.sha256 })
            let fresh = try TestClient(port: server.port)
            try fresh.startTLS(caFile: second.certificatePath)
            #expect(fresh.peerCertificateSHA256 == second.sha256)
            try open.send(TestClient.request("GET", "/hello"))
            #expect(try open.readResponse().text == "hello")
        }
    }

    @Test func streamedBodiesAndServerSentEventsWorkOverTLS() throws {
        var router = TestServer.basicRouter()
        router.post("/upload", options: .streaming(maxBodyBytes: 16 << 20)) { req, _ in
            guard case .stream(let stream) = req.body else { throw HTTPError(.badRequest) }
            var total = 0
            var sum: UInt64 = 0
            while let chunk = try stream.next() {
                total += chunk.count
                for b in chunk { sum &+= UInt64(b) }
            }
            return .text("\(total) \(sum)")
        }
        router.get("/events") { _, _ in
            SSEWriter.response(heartbeat: .seconds(10)) { sse in
                let payload = String(repeating: "x", count: 8000)
                for i in 0..<300 { try sse.send(event: "n", data: "\(i) \(payload)") }  // 2.4 MB: past the 1 MiB output buffer
                try sse.send(event: "done", data: "end")
            }
        }
        try Self.withTLSServer({ $0.requestStreamBuffer = 128 * 1024; $0.responseStreamBuffer = 256 * 1024 }, router: router) { server, cert, _ in
            let c = try TestClient(port: server.port, timeout: 60)
            try c.startTLS(caFile: cert.certificatePath)
            let size = 6 << 20
            let block = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7) }
            var expected: UInt64 = 0
            for b in block { expected &+= UInt64(b) }
            try c.send("POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: \(size)\r\n\r\n")
            for _ in 0..<6 { try c.send(block) }
            let r = try c.readResponse()
            #expect(r.status == 200)
            #expect(r.text == "\(size) \(expected &* 6)")

            try c.send(TestClient.request("GET", "/events"))
            let events = try c.readResponse()
            #expect(events.header("Content-Type") == "text/event-stream")
            let text = events.text
            #expect(text.components(separatedBy: "event: n\n").count == 301)
            #expect(text.hasSuffix("event: done\ndata: end\n\n"))
        }
    }

    @Test func stalledHandshakeIsClosedByTheHeaderTimeout() throws {
        try Self.withTLSServer({ $0.headerReadTimeout = .milliseconds(500); $0.idleTimeout = .seconds(30) }) { server, cert, _ in
            let silent = try TestClient(port: server.port, timeout: 10)
            let partial = try TestClient(port: server.port, timeout: 10)
            try partial.send([0x16, 0x03, 0x01, 0x02, 0x00, 0x01])  // the start of a ClientHello record, then nothing
            let start = Date()
            #expect(silent.waitForClose())
            #expect(partial.waitForClose())
            let waited = Date().timeIntervalSince(start)
            #expect(waited >= 0.4 && waited < 5, "closed after \(waited) s")
            #expect(TestServer.eventually { server.openConnectionCount == 0 })

            // A handshake that is not TLS at all is closed at once; the server goes on serving.
            let plain = try TestClient(port: server.port, timeout: 10)
            try plain.send(TestClient.request("GET", "/hello"))
            #expect(plain.waitForClose())
            let good = try TestClient(port: server.port)
            try good.startTLS(caFile: cert.certificatePath)
            try good.send(TestClient.request("GET", "/hello"))
            #expect(try good.readResponse().text == "hello")
        }
    }

    @Test func connectionLimitsHoldForTLS() throws {
        try Self.withTLSServer({ $0.maxConnections = 3 }) { server, cert, _ in
            var held: [TestClient] = []
            for _ in 0..<3 {
                let c = try TestClient(port: server.port)
                try c.startTLS(caFile: cert.certificatePath)
                held.append(c)
            }
            #expect(TestServer.eventually { server.openConnectionCount == 3 })
            let extra = try TestClient(port: server.port, timeout: 5)
            #expect(throws: TestClientError.self) { try extra.startTLS(caFile: cert.certificatePath) }
            #expect(TestServer.eventually { server.rejectedConnections == 1 })
            try held[0].send(TestClient.request("GET", "/hello"))
            #expect(try held[0].readResponse().text == "hello")
        }
    }

    @Test func shutdownClosesTLSConnectionsWithinTheDeadline() throws {
        let dir = try TLSFixtures.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cert = try TLSFixtures.selfSigned(in: dir, name: "server")
        var config = HTTPServer.Configuration(host: "127.0.0.1", port: 0)
        config.tls = cert.configuration
        config.handlerThreads = 4
        let server = HTTPServer(configuration: config, router: TestServer.basicRouter())
        try server.start()
        let idle = try TestClient(port: server.port)
        try idle.startTLS(caFile: cert.certificatePath)
        try idle.send(TestClient.request("GET", "/hello"))
        #expect(try idle.readResponse().text == "hello")
        let handshaking = try TestClient(port: server.port)  // TCP only: no ClientHello yet
        let busy = try TestClient(port: server.port)
        try busy.startTLS(caFile: cert.certificatePath)
        try busy.send(TestClient.request("GET", "/slow/3000"))
        #expect(TestServer.eventually { server.openConnectionCount == 3 })
        usleep(100_000)

        let start = Date()
        server.shutdown(deadline: .seconds(1))
        #expect(server.waitUntilStopped(timeout: .seconds(4)))
        let took = Date().timeIntervalSince(start)
        #expect(took < 3, "stopped after \(took) s")
        #expect(idle.waitForClose())
        #expect(handshaking.waitForClose())
        #expect(busy.waitForClose())
        _ = server.waitForHandlers(timeout: .seconds(10))
    }

    /// Copies `new`'s files over `old`'s (the paths the server was configured with).
    static func replace(_ old: TestCertificate, with new: TestCertificate) throws {
        for (from, to) in [(new.certificatePath, old.certificatePath), (new.keyPath, old.keyPath)] {
            let data = try Data(contentsOf: URL(fileURLWithPath: from))
            try data.write(to: URL(fileURLWithPath: to), options: .atomic)
        }
    }
}
