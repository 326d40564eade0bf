// Slowloris, max connections, header timeout, and graceful shutdown.

import Foundation
import Synchronization
import Testing
@testable import HTTP
#if canImport(Glibc)
import Glibc
import TestSupport
#endif

@Suite(.serialized) struct LimitTests {
    @Test func slowlorisDoesNotDelayNormalClientsAndIsClosedByHeaderTimeout() throws {
        let tricklers = 500
        try TestServer.with({ $0.headerReadTimeout = .seconds(2); $0.maxConnections = 2000; $0.maxConnectionsPerAddress = 2000 }, router: TestServer.basicRouter()) { server in
            var clients: [TestClient] = []
            for _ in 0..<tricklers {
                let c = try TestClient(port: server.port, timeout: 20)
                try c.send("GET /hello HTTP/1.1\r\n")
                clients.append(c)
            }
            #expect(TestServer.eventually { server.openConnectionCount == tricklers })
            // Trickle one header byte per connection every 100 ms from a background thread.
            let stop = Atomic<Bool>(false)
            let fds = clients.map(\.fd)
            let trickler = Thread {
                let byte: [UInt8] = [0x58]  // "X": a header name that never ends
                while !stop.load(ordering: .relaxed) {
                    for fd in fds { _ = byte.withUnsafeBytes { send(fd, $0.baseAddress!, 1, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) } }
                    usleep(100_000)
                }
            }
            trickler.start()
            defer { stop.store(true, ordering: .relaxed) }
            usleep(300_000)

            var latencies: [Double] = []
            for _ in 0..<7 {
                let normal = try TestClient(port: server.port)
                let start = Date()
                try normal.send(TestClient.request("GET", "/hello"))
                #expect(try normal.readResponse().text == "hello")
                latencies.append(Date().timeIntervalSince(start))
                usleep(50_000)
            }
            latencies.sort()
            #expect(latencies[latencies.count / 2] < 0.1, "median latency \(latencies[latencies.count / 2]) s, all \(latencies)")

            // Every trickling connection is answered 408 and closed by the 2 s header timeout.
            let deadline = Date().addingTimeInterval(15)
            var closed = 0
            for c in clients {
                c.setTimeout(max(0.1, deadline.timeIntervalSinceNow))
                if c.waitForClose() { closed += 1 }
            }
            #expect(closed == tricklers)
            #expect(TestServer.eventually { server.openConnectionCount == 0 })
        }
    }

    @Test func stalledBodyIsAnswered408AndClosed() throws {
        try TestServer.with({ $0.bodyReadTimeout = .milliseconds(300) }, router: TestServer.basicRouter()) { server in
            let c = try TestClient(port: server.port)
            try c.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
            let r = try c.readResponse()
            #expect(r.status == 408)
            #expect(c.waitForClose())
            #expect(TestServer.eventually { server.openConnectionCount == 0 })
        }
    }

    @Test func handlerPastItsDeadlineIsAnswered503AndItsLateAnswerDropped() throws {
        var router = TestServer.basicRouter()
        router.post("/stream-in", options: .streaming()) { req, _ in
            usleep(700_000)  // streamed-body routes are not under the handler deadline
            return .text("streamed \(try req.body.collect().count)")
        }
        try TestServer.with({ $0.handlerTimeout = .milliseconds(300) }, router: router) { server in
            let c = try TestClient(port: server.port)
            let start = Date()
            try c.send(TestClient.request("GET", "/slow/1500"))
            let r = try c.readResponse()
            let waited = Date().timeIntervalSince(start)
            #expect(r.status == 503 && r.header("Connection") == "close", "\(r.status)")
            #expect(r.text.contains("not answered within 0.3 s"), "\(r.text)")
            #expect(waited >= 0.25 && waited < 1.2, "answered after \(waited) s")
            // The handler's own answer, 1.5 s in, is dropped, never written.
            #expect(c.waitForClose())
            #expect(TestServer.eventually(timeout: 5) { server.lateAnswersDropped == 1 }, "dropped \(server.lateAnswersDropped)")
            // A handler inside the deadline answers normally, and the server keeps serving.
            let ok = try TestClient(port: server.port)
            try ok.send(TestClient.request("GET", "/slow/50"))
            #expect(try ok.readResponse().text == "slow 50")
            let streamed = try TestClient(port: server.port)
            try streamed.send(TestClient.request("POST", "/stream-in", body: Array("abc".utf8)))
            #expect(try streamed.readResponse().text == "streamed 3")
        }
    }

    @Test func requestPastItsDeadlineBeforeAThreadFreesIsNeverRun() throws {
        let runs = Atomic<Int>(0)
        var router = TestServer.basicRouter()
        router.post("/count") { _, _ in runs.add(1, ordering: .relaxed); return .text("counted") }
        try TestServer.with({ $0.handlerTimeout = .milliseconds(300); $0.handlerThreads = 1 }, router: router) { server in
            let busy = try TestClient(port: server.port)
            try busy.send(TestClient.request("GET", "/slow/1200"))   // holds the only handler thread
            usleep(100_000)
            let queued = try TestClient(port: server.port)
            try queued.send(TestClient.request("POST", "/count", body: Array("x".utf8)))
            #expect(try queued.readResponse().status == 503)
            #expect(try busy.readResponse().status == 503)
            // Once the thread is free the abandoned request is skipped: the handler never ran.
            usleep(1_500_000)
            #expect(runs.load(ordering: .relaxed) == 0)
            let again = try TestClient(port: server.port)
            try again.send(TestClient.request("POST", "/count", body: Array("x".utf8)))
            #expect(try again.readResponse().text == "counted" && runs.load(ordering: .relaxed) == 1)
        }
    }

    @Test func shutdownCanWaitForAHandlerAbandonedAtItsDeadline() throws {
        let finished = Atomic<Bool>(false)
        var router = Router()
        router.get("/long") { _, _ in usleep(1_000_000); finished.store(true, ordering: .releasing); return .text("late") }
        var config = HTTPServer.Configuration(host: "127.0.0.1", port: 0)
        config.handlerTimeout = .milliseconds(200)
        config.lingerTimeout = .milliseconds(50)
        let server = HTTPServer(configuration: config, router: router)
        try server.start()
        let c = try TestClient(port: server.port)
        try c.send(TestClient.request("GET", "/long"))
        #expect(try c.readResponse().status == 503)
        server.shutdown(deadline: .seconds(5))
        // Every connection is closed, but the handler is still at work…
        #expect(server.waitUntilStopped(timeout: .seconds(5)))
        #expect(finished.load(ordering: .acquiring) == false)
        // …and waiting for handlers returns once it is done.
        #expect(server.waitForHandlers(timeout: .seconds(5)))
        #expect(finished.load(ordering: .acquiring) == true)
    }

    @Test func connectionsBeyondTheLimitGet503() throws {
        try TestServer.with({ $0.maxConnections = 4 }, router: TestServer.basicRouter()) { server in
            var held: [TestClient] = []
            for _ in 0..<4 { held.append(try TestClient(port: server.port)) }
            #expect(TestServer.eventually { server.openConnectionCount == 4 })
            let extra = try TestClient(port: server.port)
            let r = try extra.readResponse()
            #expect(r.status == 503)
            #expect(r.header("Connection") == "close")
            #expect(extra.waitForClose())
            held.removeLast()
            #expect(TestServer.eventually { server.openConnectionCount == 3 })
            let again = try TestClient(port: server.port)
            try again.send(TestClient.request("GET", "/hello"))
            #expect(try again.readResponse().status == 200)
        }
    }

    @Test func gracefulShutdownFinishesInFlightRequestAndClosesIdleOnes() throws {
        let started = DispatchSemaphore(value: 0)
        var router = TestServer.basicRouter()
        router.get("/work") { _, _ in
            started.signal()
            usleep(500_000)
            return .text("done")
        }
        var config = HTTPServer.Configuration(host: "127.0.0.1", port: 0)
        config.handlerThreads = 4
        let server = HTTPServer(configuration: config, router: router)
        try server.start()
        let idle = try TestClient(port: server.port)
        try idle.send(TestClient.request("GET", "/hello"))
        _ = try idle.readResponse()
        let busy = try TestClient(port: server.port)
        try busy.send(TestClient.request("GET", "/work"))
        #expect(started.wait(timeout: .now() + 10) == .success)

        server.shutdown(deadline: .seconds(10))
        #expect(idle.waitForClose())
        let r = try busy.readResponse()
        #expect(r.status == 200)
        #expect(r.text == "done")
        #expect(r.header("Connection") == "close")
        #expect(busy.waitForClose())
        #expect(server.waitUntilStopped(timeout: .seconds(10)))
        #expect(throws: TestClientError.self) { try TestClient(port: server.port) }
    }

    @Test func shutdownDeadlineForceClosesStuckRequests() throws {
        var router = Router()
        router.get("/stuck") { _, _ in usleep(3_000_000); return .text("late") }
        var config = HTTPServer.Configuration(host: "127.0.0.1", port: 0)
        config.handlerThreads = 2
        let server = HTTPServer(configuration: config, router: router)
        try server.start()
        let c = try TestClient(port: server.port)
        try c.send(TestClient.request("GET", "/stuck"))
        usleep(100_000)
        let start = Date()
        server.shutdown(deadline: .milliseconds(300))
        #expect(server.waitUntilStopped(timeout: .seconds(10)))
        #expect(Date().timeIntervalSince(start) < 2.5)
        #expect(c.waitForClose())
    }
}
