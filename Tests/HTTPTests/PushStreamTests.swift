// Push-style responses (PushStream, DeferredResponse) and pushed request bodies
// (RequestBodyConsumer) over real sockets: no thread is held while they are open.

import Foundation
import Synchronization
import Testing
import TestSupport
@testable import HTTP

/// Streams handed out by a route, for the test to push into from its own thread.
private final class StreamRegistry: Sendable {
    let streams = Mutex<[PushStream]>([])
    let closes = Mutex<[PushStream.CloseReason]>([])
    func add(_ s: PushStream) {
        s.onClose { [self] reason in closes.withLock { $0.append(reason) } }
        streams.withLock { $0.append(s) }
    }
    var all: [PushStream] { streams.withLock { $0 } }
    var closeReasons: [PushStream.CloseReason] { closes.withLock { $0 } }
}

@Suite struct PushStreamTests {
    private func pushRouter(_ registry: StreamRegistry, heartbeat: Duration? = nil, buffer: Int = 256 * 1024) -> Router {
        var router = Router()
        router.get("/events") { _, _ in
            let stream = heartbeat.map { SSEWriter.pushStream(heartbeat: $0, maxBufferedBytes: buffer) }
                ?? PushStream(maxBufferedBytes: buffer)
            stream.write(SSEWriter.encode(event: "hello", data: "0", id: "0"))  // before the head: kept, sent first
            registry.add(stream)
            return SSEWriter.pushResponse(stream)
        }
        router.get("/ping") { _, _ in .text("pong") }
        return router
    }

    /// Reads chunks until `text` holds `needle` (or the body ends); returns what was read.
    private func read(_ c: TestClient, until needle: String) throws -> String {
        var text = ""
        while !text.contains(needle) {
            guard let chunk = try c.readChunk() else { break }
            text += String(decoding: chunk, as: UTF8.self)
        }
        return text
    }

    @Test func manyOpenStreamsLeaveTwoHandlerThreadsFree() throws {
        let registry = StreamRegistry()
        try TestServer.with({ $0.handlerThreads = 2 }, router: pushRouter(registry)) { server in
            let clients = try (0..<60).map { _ in try TestClient(port: server.port) }
            for c in clients {
                try c.send(TestClient.request("GET", "/events"))
                let head = try c.readResponse(head: true)
                #expect(head.status == 200)
                #expect(head.header("Content-Type") == "text/event-stream")
                #expect(try read(c, until: "data: 0\n\n").hasPrefix("id: 0\nevent: hello\ndata: 0\n\n"))
            }
            #expect(TestServer.eventually { registry.all.count == 60 })
            // 60 streams are open and both handler threads are free: another request is answered.
            let other = try TestClient(port: server.port)
            for _ in 0..<5 {
                try other.send(TestClient.request("GET", "/ping"))
                #expect(try other.readResponse().text == "pong")
            }
            // Another thread pushes 20 events into every stream, then ends them.
            let producer = Thread {
                for i in 1...20 { for s in registry.all { s.write(SSEWriter.encode(event: "n", data: "\(i)", id: "\(i)")) } }
                for s in registry.all { s.finish() }
            }
            producer.start()
            for c in clients {
                var text = ""
                while let chunk = try c.readChunk() { text += String(decoding: chunk, as: UTF8.self) }
                let ids = text.split(separator: "\n").filter { $0.hasPrefix("id: ") }.map { Int($0.dropFirst(4))! }
                #expect(ids == Array(1...20))
                // Keep-alive: the same connection serves the next request.
                try c.send(TestClient.request("GET", "/ping"))
                #expect(try c.readResponse().text == "pong")
            }
            #expect(TestServer.eventually { registry.closeReasons.filter { $0 == .finished }.count == 60 })
        }
    }

    @Test func heartbeatsComeFromATimerWhileIdle() throws {
        let registry = StreamRegistry()
        try TestServer.with(router: pushRouter(registry, heartbeat: .milliseconds(50))) { server in
            let c = try TestClient(port: server.port)
            try c.send(TestClient.request("GET", "/events"))
            _ = try c.readResponse(head: true)
            var beats = 0
            var text = ""
            while beats < 3 {
                text = String(decoding: try #require(try c.readChunk()), as: UTF8.self)
                if text == ": heartbeat\n\n" { beats += 1 }
            }
            #expect(try #require(registry.all.first).heartbeatCount >= 3)
        }
    }

    @Test func clientDisconnectClosesTheStream() throws {
        let registry = StreamRegistry()
        try TestServer.with(router: pushRouter(registry, heartbeat: .seconds(30))) { server in
            do {
                let c = try TestClient(port: server.port)
                try c.send(TestClient.request("GET", "/events"))
                _ = try c.readResponse(head: true)
                _ = try read(c, until: "data: 0")
            }  // the client closes here
            #expect(TestServer.eventually { registry.closeReasons == [.clientGone] })
            #expect(TestServer.eventually { server.openConnectionCount == 0 })
            let stream = try #require(registry.all.first)
            #expect(!stream.isOpen)
            #expect(!stream.write(Array("late".utf8)))  // writes after the client left are refused
        }
    }

    @Test func aClientThatDoesNotReadIsDisconnectedAtItsBuffer() throws {
        let registry = StreamRegistry()
        try TestServer.with(router: pushRouter(registry, buffer: 64 * 1024)) { server in
            let c = try TestClient(port: server.port)
            try c.send(TestClient.request("GET", "/events"))
            #expect(TestServer.eventually { registry.all.count == 1 })
            let stream = registry.all[0]
            let piece = [UInt8](repeating: 0x61, count: 16 * 1024)
            var written = 0
            // The kernel's socket buffers take some megabytes; past them the stream's 64 KiB fill.
            while written < 256 << 20, stream.write(piece) { written += piece.count }
            #expect(written < 256 << 20)
            #expect(stream.closeReason == .overflow)
            #expect(stream.pendingBytes <= 64 * 1024)
            #expect(TestServer.eventually { server.openConnectionCount == 0 })
            #expect(c.waitForClose())
        }
    }

    @Test func serverShutdownEndsOpenStreams() throws {
        let registry = StreamRegistry()
        var config = HTTPServer.Configuration(host: "127.0.0.1", port: 0)
        config.handlerThreads = 2
        let server = HTTPServer(configuration: config, router: pushRouter(registry))
        try server.start()
        let c = try TestClient(port: server.port)
        try c.send(TestClient.request("GET", "/events"))
        _ = try c.readResponse(head: true)
        _ = try read(c, until: "data: 0")
        server.shutdown(deadline: .seconds(5))
        #expect(try c.readChunk() == nil)  // the body was ended, not cut
        #expect(server.waitUntilStopped(timeout: .seconds(10)))
        #expect(registry.closeReasons == [.serverShutdown])
    }

    @Test func deferredResponsesHoldNoHandlerThread() throws {
        let pending = Mutex<[(String, DeferredResponse)]>([])
        var router = Router()
        router.get("/later") { req, _ in
            let d = DeferredResponse()
            pending.withLock { $0.append((req.queryValue("n") ?? "", d)) }
            return .deferred(d)
        }
        router.get("/ping") { _, _ in .text("pong") }
        try TestServer.with({ $0.handlerThreads = 1 }, router: router) { server in
            let clients = try (0..<10).map { _ in try TestClient(port: server.port) }
            for (i, c) in clients.enumerated() { try c.send(TestClient.request("GET", "/later?n=\(i)")) }
            #expect(TestServer.eventually { pending.withLock { $0.count } == 10 })
            let other = try TestClient(port: server.port)
            try other.send(TestClient.request("GET", "/ping"))
            #expect(try other.readResponse().text == "pong")  // the single handler thread is free
            let answers = Thread {
                for (n, d) in pending.withLock({ $0 }) { d.respond(.json("{\"n\":\(n)}", status: .created)) }
            }
            answers.start()
            for (i, c) in clients.enumerated() {
                let r = try c.readResponse()
                #expect(r.status == 201)
                #expect(r.text == "{\"n\":\(i)}")
                try c.send(TestClient.request("GET", "/ping"))
                #expect(try c.readResponse().text == "pong")
            }
        }
    }

    @Test func deferredResponseSeesItsClientLeave() throws {
        let cancelled = DispatchSemaphore(value: 0)
        var router = Router()
        router.get("/later") { _, _ in
            let d = DeferredResponse()
            d.onCancel { cancelled.signal() }
            return .deferred(d)
        }
        try TestServer.with(router: router) { server in
            do {
                let c = try TestClient(port: server.port)
                try c.send(TestClient.request("GET", "/later"))
                usleep(100_000)
            }
            #expect(cancelled.wait(timeout: .now() + 10) == .success)
            #expect(TestServer.eventually { server.openConnectionCount == 0 })
        }
    }
}

/// A consumer that hands chunks to a thread of its own and pauses the connection while that
/// thread is behind (the shape of the streamed-task route).
private final class SlowConsumer: Sendable {
    let lock = NSCondition()
    nonisolated(unsafe) var queued: [[UInt8]] = []  // guarded by lock
    nonisolated(unsafe) var ended: Result<HTTPHeaders, any Error>?
    nonisolated(unsafe) var total = 0
    nonisolated(unsafe) var sum: UInt64 = 0
    nonisolated(unsafe) var pauses = 0
    nonisolated(unsafe) var maxQueued = 0
    let feed: RequestBodyFeed
    let answer: DeferredResponse

    init(feed: RequestBodyFeed, answer: DeferredResponse) {
        self.feed = feed
        self.answer = answer
    }

    func start() {
        let consumer = RequestBodyConsumer(chunk: { [self] bytes in
            lock.lock(); defer { lock.unlock() }
            queued.append(bytes)
            let n = queued.reduce(0) { $0 + $1.count }
            maxQueued = max(maxQueued, n)
            lock.signal()
            if n >= 128 * 1024 { pauses += 1; return .pause }
            return .more
        }, end: { [self] result in
            lock.lock(); ended = result; lock.signal(); lock.unlock()
        })
        Thread { [self] in work() }.start()
        feed.start(consumer)
    }

    private func work() {
        while true {
            lock.lock()
            while queued.isEmpty && ended == nil { lock.wait() }
            if queued.isEmpty, let ended {
                lock.unlock()
                switch ended {
                case .success: answer.respond(.text("\(total) \(sum)"))
                case .failure(let e): answer.respond(HTTPError(.badRequest, message: "\(e)").response)
                }
                return
            }
            let batch = queued
            queued = []
            lock.unlock()
            usleep(2_000)  // slower than the client
            for piece in batch { total += piece.count; for b in piece { sum &+= UInt64(b) } }
            feed.resume()
        }
    }
}

@Suite struct PushedBodyTests {
    @Test func pushedBodyArrivesWithBackpressureAndADeferredAnswer() throws {
        let consumers = Mutex<[SlowConsumer]>([])
        var router = Router()
        router.post("/upload", options: .pushed(maxBodyBytes: 64 << 20)) { req, _ in
            guard case .pushed(let feed) = req.body else { throw HTTPError(.badRequest) }
            let d = DeferredResponse()
            let c = SlowConsumer(feed: feed, answer: d)
            consumers.withLock { $0.append(c) }
            c.start()
            return .deferred(d)
        }
        router.get("/ping") { _, _ in .text("pong") }
        try TestServer.with({ $0.handlerThreads = 1 }, router: router) { server in
            let c = try TestClient(port: server.port, timeout: 60)
            let size = 8 << 20
            try c.send("POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: \(size)\r\n\r\n")
            let block = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7) }
            var expected: UInt64 = 0
            for b in block { expected &+= UInt64(b) }
            // Mid-upload the only handler thread is free for other requests.
            for i in 0..<8 {
                try c.send(block)
                if i == 4 {
                    let other = try TestClient(port: server.port)
                    try other.send(TestClient.request("GET", "/ping"))
                    #expect(try other.readResponse().text == "pong")
                }
            }
            let r = try c.readResponse()
            #expect(r.status == 200)
            #expect(r.text == "\(size) \(expected &* 8)")
            let consumer = try #require(consumers.withLock { $0.first })
            #expect(consumer.pauses > 0)  // it fell behind and the connection waited for it
            // Bounded: the pause threshold plus what one parse step hands over (at most two read bursts of 320 KiB).
            #expect(consumer.maxQueued <= 128 * 1024 + 640 * 1024)
        }
    }

    @Test func pushedBodyCutMidwayFailsTheConsumer() throws {
        let consumers = Mutex<[SlowConsumer]>([])
        var router = Router()
        router.post("/upload", options: .pushed(maxBodyBytes: 64 << 20)) { req, _ in
            guard case .pushed(let feed) = req.body else { throw HTTPError(.badRequest) }
            let d = DeferredResponse()
            let c = SlowConsumer(feed: feed, answer: d)
            consumers.withLock { $0.append(c) }
            c.start()
            return .deferred(d)
        }
        try TestServer.with(router: router) { server in
            do {
                let c = try TestClient(port: server.port)
                try c.send("POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n")
                try c.send([UInt8](repeating: 1, count: 300_000))
                #expect(TestServer.eventually { consumers.withLock { $0.first?.total ?? 0 } > 0 })
            }
            let consumer = try #require(consumers.withLock { $0.first })
            #expect(TestServer.eventually {
                consumer.lock.lock(); defer { consumer.lock.unlock() }
                if case .failure = consumer.ended { return true }
                return false
            })
            #expect(TestServer.eventually { server.openConnectionCount == 0 })
        }
    }
}
