// Issue 15, access log: lines go into a bounded buffer that one thread writes out, so a stuck
// destination (a pipe nobody reads) never slows a request down: lines that do not fit are dropped
// and counted. Lines read back from a pipe or a file are whole, and well-formed JSON in json mode.

import Foundation
import Synchronization
import Testing
@testable import HTTP
#if canImport(Glibc)
import Glibc
import TestSupport
#endif

@Suite struct AccessLogTests {
    /// The test server's logger lets only critical lines through, so the access log logs at that level.
    static func router(_ writer: AccessLogWriter, _ format: AccessLogFormat) -> Router {
        var router = TestServer.basicRouter()
        router.use(RequestIDMiddleware())
        router.use(AccessLogMiddleware(writer: writer, format: format, level: .critical))
        return router
    }

    /// A pipe; the caller closes both ends.
    static func makePipe() throws -> (read: Int32, write: Int32) {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw TestClientError(description: "pipe: errno \(errno)") }
        return (fds[0], fds[1])
    }

    /// What can be read from `fd` now, without waiting.
    static func readAvailable(_ fd: Int32) -> [UInt8] {
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            out += chunk[0..<n]
        }
        return out
    }

    static var textLine: Regex<(Substring, Substring, Substring, Substring, Substring, Substring, Substring)> { #/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0000 critical test\.http: bytes=(\d+|-) ms=\d+\.\d{3} remote=127\.0\.0\.1:\d+ request-id=(\S+) route=(\S+) \[HTTP\] ([A-Z]+) (\S+) (\d{3})$/# }

    @Test func aFullBufferDropsAndCountsLinesAndNeverBlocksARequest() throws {
        let (readEnd, writeEnd) = try Self.makePipe()
        defer { close(readEnd) }
        // Nobody reads the pipe: it takes 64 KiB, the buffer 8 KiB more, then every line is dropped.
        let writer = AccessLogWriter(fileDescriptor: writeEnd, capacity: 8 << 10, closeWhenDone: true)
        try TestServer.with(router: Self.router(writer, .text)) { server in
            let client = try TestClient(port: server.port, timeout: 5)
            var slowest = Duration.zero
            let start = ContinuousClock.now
            for i in 0..<3000 {
                let t = ContinuousClock.now
                try client.send("GET /hello HTTP/1.1\r\nHost: t\r\nX-Request-Id: overflow-\(i)\r\n\r\n")
                #expect(try client.readResponse().status == 200)
                slowest = max(slowest, ContinuousClock.now - t)
                if i == 1500 { #expect(writer.droppedLines > 0, "64 KiB + 8 KiB hold about 500 lines") }
            }
            let total = ContinuousClock.now - start
            // A request that waited for the stuck pipe would never be answered (the read times out after 5 s).
            #expect(slowest < .seconds(2), "slowest request \(slowest)")
            #expect(total < .seconds(60), "3000 requests took \(total)")
            let dropped = writer.droppedLines
            #expect(dropped >= 2000, "dropped \(dropped) of 3000")
            #expect(writer.prometheusText().contains(#"http_access_log_dropped_total{reason="buffer_full"} \#(dropped)"#))

            // What reached the pipe is whole lines, in order, each in the text layout.
            let text = String(decoding: Self.readAvailable(readEnd), as: UTF8.self)
            #expect(text.hasSuffix("\n"))
            let lines = text.split(separator: "\n")
            #expect(lines.count > 100 && lines.count < 1000, "\(lines.count) lines in the pipe")
            // In order: lines are dropped, never reordered (one client, one request at a time).
            var last = -1
            for line in lines {
                let match = try #require(try Self.textLine.wholeMatch(in: String(line)), "\(line)")
                #expect(match.3 == "/hello" && match.5 == "/hello" && match.6 == "200")
                let n = try #require(Int(match.2.dropFirst("overflow-".count)), "\(line)")
                #expect(n > last, "\(line) after overflow-\(last)")
                last = n
            }
        }
        // The pipe drained: what is still buffered goes out now (flush gives up after its timeout otherwise).
        #expect(writer.flush(timeout: .seconds(10)))
        #expect(writer.failedLines == 0)
    }

    /// A deferred answer (predictions, streamed tasks) is logged and counted with the status it was
    /// finally given and the latency up to then, not the placeholder the handler returned; also when
    /// the answer came before the middleware saw the placeholder.
    @Test func deferredAnswersAreLoggedAndCountedWithTheirFinalStatus() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pfc-accesslog-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("access.log").path
        let writer = try AccessLogWriter(path: path)
        let registry = MetricsRegistry()
        var router = Router()
        router.use(RequestIDMiddleware())
        router.use(MetricsMiddleware(registry: registry))
        router.use(AccessLogMiddleware(writer: writer, format: .json, level: .critical))
        router.get("/later") { _, _ in
            let d = DeferredResponse()
            // A queue of its own: the suite's compute tests can hold the global pool for a long time.
            DispatchQueue(label: "test.deferred").asyncAfter(deadline: .now() + .milliseconds(150)) { d.respond(.json("{}", status: .created)) }
            return .deferred(d)
        }
        router.get("/at-once") { _, _ in
            let d = DeferredResponse()
            d.respond(.json("{}", status: .unprocessableContent))  // answered before any middleware sees it
            return .deferred(d)
        }
        try TestServer.with(router: router) { server in
            let c = try TestClient(port: server.port)
            try c.send("GET /later HTTP/1.1\r\nHost: t\r\nX-Request-Id: later-1\r\n\r\n")
            #expect(try c.readResponse().status == 201)
            try c.send("GET /at-once HTTP/1.1\r\nHost: t\r\nX-Request-Id: once-1\r\n\r\n")
            #expect(try c.readResponse().status == 422)
            #expect(writer.flush(timeout: .seconds(10)))
        }
        #expect(registry.requestCount(method: "GET", route: "/later", status: 201) == 1)
        #expect(registry.requestCount(method: "GET", route: "/later", status: 202) == 0)
        #expect(registry.requestCount(method: "GET", route: "/at-once", status: 422) == 1)
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] ?? [:]
        }
        let later = lines.first { $0["request_id"] as? String == "later-1" }, once = lines.first { $0["request_id"] as? String == "once-1" }
        #expect(later?["status"] as? Int == 201, "\(lines)")
        #expect((later?["latency_ms"] as? Double ?? 0) >= 140, "latency runs to the answer: \(String(describing: later))")
        #expect(once?["status"] as? Int == 422, "\(lines)")
        #expect(lines.count == 2)
    }

    @Test func jsonLinesAreWholeAndWellFormedUnderConcurrentRequests() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pfc-accesslog-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("access.log").path
        let writer = try AccessLogWriter(path: path)
        let clients = 4, perClient = 250
        try TestServer.with(router: Self.router(writer, .json)) { server in
            let failures = Mutex(0)
            DispatchQueue.concurrentPerform(iterations: clients) { c in
                do {
                    let client = try TestClient(port: server.port)
                    for i in 0..<perClient {
                        try client.send("GET /items/\(c)-\(i)?q=1 HTTP/1.1\r\nHost: t\r\nX-Request-Id: json-\(c)-\(i)\r\n\r\n")
                        if try client.readResponse().status != 200 { failures.withLock { $0 += 1 } }
                    }
                } catch { failures.withLock { $0 += 1 } }
            }
            #expect(failures.withLock { $0 } == 0)
            // A quote, a backslash, a newline and a tab in the (decoded) path, an unmatched route, and
            // a request id with a quote: the JSON must still parse.
            let odd = try TestClient(port: server.port)
            try odd.send("GET /items/a%22b%5Cc%0Ad%09e HTTP/1.1\r\nHost: t\r\nX-Request-Id: odd\"id\r\n\r\n")
            #expect(try odd.readResponse().status == 200)
            try odd.send("GET /nowhere HTTP/1.1\r\nHost: t\r\n\r\n")
            #expect(try odd.readResponse().status == 404)
            #expect(writer.flush(timeout: .seconds(10)))
        }
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text.hasSuffix("\n"))
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        #expect(lines.count == clients * perClient + 2)
        #expect(writer.droppedLines == 0)
        let fields: Set<String> = ["time", "request_id", "method", "route", "path", "status", "bytes_out", "latency_ms", "peer"]
        var seen = Set<String>()
        var records: [[String: Any]] = []
        for line in lines {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "not JSON: \(line)")
            #expect(Set(object.keys) == fields, "\(line)")
            #expect((object["time"] as? String)?.wholeMatch(of: #/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/#) != nil)
            #expect((object["latency_ms"] as? Double).map { $0 >= 0 && $0 < 60_000 } == true)
            #expect((object["peer"] as? String)?.hasPrefix("127.0.0.1:") == true)
            #expect(object["method"] as? String == "GET")
            if let id = object["request_id"] as? String { seen.insert(id) }
            records.append(object)
        }
        #expect(seen.count == lines.count, "every request once")
        let item = try #require(records.first { $0["request_id"] as? String == "json-3-7" })
        #expect(item["route"] as? String == "/items/{id}" && item["path"] as? String == "/items/3-7" && item["status"] as? Int == 200)
        #expect(item["bytes_out"] as? Int == "item 3-7 q=1".utf8.count)
        let odd = try #require(records.first { $0["request_id"] as? String == "odd\"id" })
        #expect(odd["path"] as? String == "/items/a\"b\\c\nd\te")
        let unmatched = try #require(records.first { $0["path"] as? String == "/nowhere" })
        #expect(unmatched["route"] is NSNull && unmatched["status"] as? Int == 404)
    }

    @Test func textLinesKeepTheirFieldsAndEscapeSeparators() throws {
        let (readEnd, writeEnd) = try Self.makePipe()
        defer { close(readEnd) }
        let writer = AccessLogWriter(fileDescriptor: writeEnd, closeWhenDone: true)
        try TestServer.with(router: Self.router(writer, .text)) { server in
            let client = try TestClient(port: server.port)
            try client.send("GET /items/a%20b%0A HTTP/1.1\r\nHost: t\r\nX-Request-Id: text-1\r\n\r\n")
            #expect(try client.readResponse().status == 200)
            #expect(writer.flush(timeout: .seconds(10)))
        }
        let line = String(decoding: Self.readAvailable(readEnd), as: UTF8.self)
        let match = try #require(try Self.textLine.wholeMatch(in: String(line.dropLast())), "\(line)")
        #expect(match.1 == "\("item a b\n q=-".utf8.count)" && match.2 == "text-1" && match.3 == "/items/{id}")
        #expect(match.4 == "GET" && match.5 == "/items/a%20b%0A" && match.6 == "200")
    }

    @Test func linesAreWrittenWithoutAFlushWithinTheInterval() throws {
        let (readEnd, writeEnd) = try Self.makePipe()
        defer { close(readEnd) }
        let writer = AccessLogWriter(fileDescriptor: writeEnd, flushInterval: .milliseconds(20), closeWhenDone: true)
        #expect(writer.append("one\n") && writer.append("two\n"))
        var got: [UInt8] = []
        #expect(TestServer.eventually(timeout: 5) { got += Self.readAvailable(readEnd); return got.count == 8 })
        #expect(String(decoding: got, as: UTF8.self) == "one\ntwo\n")
    }

    @Test func aClosedDestinationCountsLostLinesAndFlushReturns() throws {
        signal(SIGPIPE, SIG_IGN)
        let (readEnd, writeEnd) = try Self.makePipe()
        close(readEnd)
        let writer = AccessLogWriter(fileDescriptor: writeEnd, closeWhenDone: true)
        for i in 0..<10 { writer.append("line \(i)\n") }
        #expect(writer.flush(timeout: .seconds(10)))
        #expect(writer.failedLines == 10 && writer.droppedLines == 0)
        #expect(writer.prometheusText().contains(#"http_access_log_dropped_total{reason="write_error"} 10"#))
    }
}
