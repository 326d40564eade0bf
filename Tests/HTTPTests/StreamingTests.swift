// Streamed request bodies (50 MiB through a streaming route, memory bounded) and Server-Sent
// Events delivered as they are produced.

import Foundation
import Synchronization
import Testing
@testable import HTTP
import TestSupport

@Suite struct StreamingTests {
    @Test func fiftyMebibyteBodyStreamedThroughHandler() throws {
        let maxChunk = Mutex<Int>(0)
        let peakBuffered = Mutex<Int>(0)
        var router = Router()
        router.post("/upload", options: .streaming(maxBodyBytes: 64 << 20)) { req, _ in
            guard case .stream(let stream) = req.body else { throw HTTPError(.badRequest) }
            var total = 0
            var sum: UInt64 = 0
            while let chunk = try stream.next() {
                total += chunk.count
                for b in chunk { sum &+= UInt64(b) }
                maxChunk.withLock { $0 = max($0, chunk.count) }
            }
            peakBuffered.withLock { $0 = stream.peakBuffered }
            return .text("\(total) \(sum)")
        }
        // The server-wide limit is 1 MiB: only the route's own limit lets 50 MiB through.
        try TestServer.with({ $0.maxBodyBytes = 1 << 20; $0.requestStreamBuffer = 256 * 1024 }, router: router) { server in
            let c = try TestClient(port: server.port, timeout: 60)
            let size = 50 << 20
            try c.send("POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: \(size)\r\n\r\n")
            let block = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            var expected: UInt64 = 0
            for b in block { expected &+= UInt64(b) }
            for _ in 0..<50 { try c.send(block) }
            let r = try c.readResponse()
            #expect(r.status == 200)
            #expect(r.text == "\(size) \(expected &* 50)")
            #expect(maxChunk.withLock { $0 } <= 256 * 1024)
            // Memory stays bounded: never more than the 256 KiB stream buffer plus one read burst.
            #expect(peakBuffered.withLock { $0 } <= 768 * 1024)
        }
    }

    /// Slow uploads hold handler threads while their bodies trickle in: past half the pool the next
    /// is answered 503 with Retry-After, and every other route keeps its threads.
    @Test func slowUploadsCannotHoldTheWholePool() throws {
        var router = TestServer.basicRouter()
        router.post("/upload", options: .streaming(maxBodyBytes: 1 << 20)) { req, _ in .text("\(try req.body.collect().count)") }
        try TestServer.with({ $0.handlerThreads = 4 }, router: router) { server in
            // Two uploads that send their head and 10 of 100 bytes, then nothing: both handlers wait.
            let slow = try (0..<2).map { _ in try TestClient(port: server.port, timeout: 30) }
            for c in slow { try c.send("POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n" + String(repeating: "a", count: 10)) }
            #expect(TestServer.eventually { server.core.streamingHandlers.load(ordering: .acquiring) == 2 }, "running: \(server.core.streamingHandlers.load(ordering: .acquiring))")
            let third = try TestClient(port: server.port, timeout: 30)
            try third.send("POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n")
            let refused = try third.readResponse()
            #expect(refused.status == 503 && refused.text.contains("too_many_uploads") && refused.header("Retry-After") == "5", "\(refused.text)")
            #expect(third.waitForClose())
            for _ in 0..<6 { // the other routes still get threads
                let c = try TestClient(port: server.port)
                try c.send("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
                #expect(try c.readResponse().status == 200)
            }
            // One slow upload finishes: its slot frees, and the next upload is served.
            try slow[0].send(String(repeating: "b", count: 90))
            let done = try slow[0].readResponse()
            #expect(done.status == 200 && done.text == "100")
            #expect(TestServer.eventually { server.core.streamingHandlers.load(ordering: .acquiring) == 1 })
            let fourth = try TestClient(port: server.port, timeout: 30)
            try fourth.send("POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nxyz")
            let served = try fourth.readResponse()
            #expect(served.status == 200 && served.text == "3")
        }
    }

    @Test func streamingRouteStillEnforcesItsLimit() throws {
        var router = Router()
        router.post("/upload", options: .streaming(maxBodyBytes: 1000)) { req, _ in .text("\(try req.body.collect().count)") }
        try TestServer.with(router: router) { server in
            let c = try TestClient(port: server.port)
            try c.send("POST /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3e8\r\n" + String(repeating: "a", count: 1000) + "\r\n1\r\nb\r\n0\r\n\r\n")
            let r = try c.readResponse()
            #expect(r.status == 413)
            #expect(c.waitForClose())
        }
    }

    @Test func serverSentEventsArriveAsProduced() throws {
        let release = DispatchSemaphore(value: 0)
        let handlerEnded = DispatchSemaphore(value: 0)
        var router = Router()
        router.get("/events") { _, _ in
            SSEWriter.response(heartbeat: .milliseconds(100)) { sse in
                defer { handlerEnded.signal() }
                try sse.send(event: "progress", data: "1", id: "a")
                release.wait()  // the client must see event 1 before event 2 exists
                try sse.send(data: "two\nlines")
                while true {  // until the client leaves
                    usleep(20_000)
                    try sse.comment("tick")
                }
            }
        }
        try TestServer.with(router: router) { server in
            let c = try TestClient(port: server.port)
            try c.send(TestClient.request("GET", "/events"))
            let head = try c.readResponse(head: true)
            #expect(head.header("Content-Type") == "text/event-stream")
            var text = ""
            while !text.contains("\n\n") { text += String(decoding: try #require(try c.readChunk()), as: UTF8.self) }
            #expect(text.hasPrefix("id: a\nevent: progress\ndata: 1\n\n"))
            release.signal()
            var rest = ""
            while !(rest.contains("data: two\ndata: lines\n\n") && rest.contains(": heartbeat")) {
                rest += String(decoding: try #require(try c.readChunk()), as: UTF8.self)
            }
            _ = c  // close the client: the handler's next send must fail
        }
        #expect(handlerEnded.wait(timeout: .now() + 10) == .success)
    }

    @Test func sseStopsWhenClientDisconnects() throws {
        let ended = DispatchSemaphore(value: 0)
        var router = Router()
        router.get("/events") { _, _ in
            SSEWriter.response(heartbeat: .milliseconds(50)) { sse in
                defer { ended.signal() }
                while sse.isConnected { usleep(10_000) }
            }
        }
        try TestServer.with(router: router) { server in
            do {
                let c = try TestClient(port: server.port)
                try c.send(TestClient.request("GET", "/events"))
                _ = try c.readResponse(head: true)
            }
            #expect(ended.wait(timeout: .now() + 10) == .success)
            #expect(TestServer.eventually { server.openConnectionCount == 0 })
        }
    }
}
