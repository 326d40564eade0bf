// RoutesTarget: the `routes` fuzz target. A real PFCService over a throwaway SQLite file behind a
// real HTTPServer on a loopback port (no job workers: queued jobs never run), seeded with datasets,
// one model of every kind, a streamed task (so the ledger and forgetting have batches) and a pending
// analysis. Every input is one request to a route chosen by its first byte, so the validation that
// lives inline in route handlers (predict, fit, perturb, forget, the path and query parameters of
// the GET routes, the store-dependent checks of train, tasks and analyses) runs exactly as served.
//
// Input: byte 0 picks the route, byte 1 the model kind (and for uploads the content type), then a
// first line (the query string) and the body. In bodies and queries "$D" is replaced by the flat
// dataset's id, "$S" the sequence dataset's, "$B" a ledger batch id, "$A" the analysis id, so a
// saved corpus stays valid across runs.
//
// A crash of any handler kills this process: libFuzzer saves the input. A 500 answer is a bug but
// not a crash: it is logged once per distinct message to stderr and the input saved under
// .build-fuzz/500s/ (PFC_FUZZ_500=crash makes it trap instead).
import Foundation
import HTTP
import Logging
import Service
import Storage
#if canImport(Glibc)
import Glibc
#endif

final class RoutesTarget: @unchecked Sendable {
    struct Route {
        var method: String
        var template: String
        /// The concrete path, given the seeded ids and the model picked.
        var path: (RoutesTarget, String) -> String
        var contentType: String? = "application/json"
    }

    static let shared = RoutesTarget()
    nonisolated(unsafe) static var cleanup: String?
    /// PFC_FUZZ_VERBOSE=1: one line per request (status, route, start of the answer).
    static let verbose = ProcessInfo.processInfo.environment["PFC_FUZZ_VERBOSE"] == "1"

    let directory: String
    let store: SQLiteStore
    let server: HTTPServer
    let service: PFCService
    let key: String
    var client: Loopback
    var models: [String] = []          // one per kind, in `kinds` order
    let kinds = ["pfc", "pfc2", "mlp", "factorized_rnn", "rnn"]
    var streamModel = ""               // the pfc model streamed tasks train (kept apart from forgetting's)
    var substitutions: [(String, String)] = []
    var seen500 = Set<String>()
    var lastFailure = ""

    nonisolated(unsafe) static let routes: [Route] = [
        Route(method: "POST", template: "/v1/models") { _, _ in "/v1/models" },
        Route(method: "POST", template: "/v1/models/{id}/train") { "/v1/models/\($1)/train" },
        Route(method: "POST", template: "/v1/models/{id}/tasks") { "/v1/models/\($1)/tasks" },
        Route(method: "POST", template: "/v1/models/{id}/tasks/stream", path: { t, _ in "/v1/models/\(t.streamModel)/tasks/stream" },
              contentType: "application/x-ndjson"),
        Route(method: "POST", template: "/v1/models/{id}/forget") { "/v1/models/\($1)/forget" },
        Route(method: "POST", template: "/v1/models/{id}/predict") { "/v1/models/\($1)/predict" },
        Route(method: "POST", template: "/v1/models/{id}/analyses") { "/v1/models/\($1)/analyses" },
        Route(method: "POST", template: "/v1/analyses/{id}/fit") { t, _ in "/v1/analyses/\(t.sub("$A"))/fit" },
        Route(method: "POST", template: "/v1/analyses/{id}/components/{j}/perturb") { t, _ in "/v1/analyses/\(t.sub("$A"))/components/0/perturb" },
        Route(method: "POST", template: "/v1/datasets") { _, _ in "/v1/datasets" },
        Route(method: "GET", template: "/v1/models/{id}/components") { "/v1/models/\($1)/components" },
        Route(method: "GET", template: "/v1/models/{id}/components/{block}/{file}") { "/v1/models/\($1)/components/0/1.png" },
        Route(method: "GET", template: "/v1/models/{id}/ledger") { "/v1/models/\($1)/ledger" },
        Route(method: "GET", template: "/v1/models/{id}/versions") { "/v1/models/\($1)/versions" },
        Route(method: "GET", template: "/v1/models/{id}/forgets") { "/v1/models/\($1)/forgets" },
        Route(method: "GET", template: "/v1/models/{id}/analyses") { "/v1/models/\($1)/analyses" },
        Route(method: "GET", template: "/v1/models/{id}/tasks") { "/v1/models/\($1)/tasks" },
        Route(method: "GET", template: "/v1/models") { _, _ in "/v1/models" },
        Route(method: "GET", template: "/v1/datasets") { _, _ in "/v1/datasets" },
        Route(method: "GET", template: "/v1/analyses/{id}/components/{j}/examples.png") { t, _ in "/v1/analyses/\(t.sub("$A"))/components/0/examples.png" },
    ]

    init() {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("pfc-fuzz-routes-\(getpid())").path
        try? FileManager.default.removeItem(atPath: directory)
        try! FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        Self.cleanup = directory
        atexit { if let dir = RoutesTarget.cleanup { try? FileManager.default.removeItem(atPath: dir) } }
        store = try! SQLiteStore(path: directory + "/pfc.sqlite")
        try! store.migrate()
        var config = ServiceConfiguration()
        config.dataDirectory = directory
        config.accessLog = false
        var logger = Logger(label: "fuzz")
        logger.logLevel = .critical
        config.pollSeconds = 0.02
        config.heartbeatSeconds = 0.1
        service = PFCService(store: store, configuration: config, logger: logger)
        var http = HTTPServer.Configuration(host: "127.0.0.1", port: 0)
        http.handlerThreads = 4
        server = HTTPServer(configuration: http, router: service.makeRouter(), logger: logger)
        try! server.start()
        key = try! APIKeys.create(in: store, tenantName: "fuzz")
        client = Loopback(port: server.port)
        seed()
    }

    func sub(_ token: String) -> String { substitutions.first { $0.0 == token }?.1 ?? token }

    func substitute(_ bytes: [UInt8]) -> [UInt8] {
        guard bytes.contains(UInt8(ascii: "$")) else { return bytes }
        var text = String(decoding: bytes, as: UTF8.self)
        for (token, value) in substitutions { text = text.replacingOccurrences(of: token, with: value) }
        return Array(text.utf8)
    }

    func call(_ method: String, _ target: String, contentType: String? = "application/json", _ body: [UInt8] = []) -> (Int, [UInt8]) {
        var headers = [("Authorization", "Bearer \(key)")]
        if let contentType { headers.append(("Content-Type", contentType)) }
        if let r = client.send(method: method, target: target, headers: headers, body: body) { return r }
        // The server closed the connection (or it broke): once more on a new one.
        let first = client.failure
        client = Loopback(port: server.port)
        if let r = client.send(method: method, target: target, headers: headers, body: body) { return r }
        lastFailure = "first connection: \(first); a new one: \(client.failure)"
        return (0, [])
    }

    func id(_ r: (Int, [UInt8]), _ what: String) -> String {
        guard (200..<300).contains(r.0), let o = try? JSONSerialization.jsonObject(with: Data(r.1)) as? [String: Any],
              let id = o["id"] as? String else { fatalError("fuzz setup: \(what) answered \(r.0): \(String(decoding: r.1, as: UTF8.self))") }
        return id
    }

    /// Datasets, a model of every kind, a streamed task and a pending analysis.
    func seed() {
        let rows = (0..<8).map { i in "[\(i % 2),\(Double(i) / 8),\(1 - Double(i) / 8),\(i % 3)]" }.joined(separator: ",")
        let flat = id(call("POST", "/v1/datasets", Array(#"{"name":"flat","features":[\#(rows)],"labels":[0,1,0,1,0,1,0,1],"image_shape":[2,2]}"#.utf8)), "flat dataset")
        let steps = (0..<8).map { i in "[[\(i % 2),1],[0,\(Double(i) / 8)]]" }.joined(separator: ",")
        let sequence = id(call("POST", "/v1/datasets", Array(#"{"name":"seq","features":[\#(steps)],"labels":[0,1,0,1,0,1,0,1]}"#.utf8)), "sequence dataset")
        for kind in kinds {
            let sequential = kind.hasSuffix("rnn")
            let body = sequential
                ? #"{"name":"\#(kind)","kind":"\#(kind)","input_dim":2,"output_dim":2,"basis":4,"iterations":2,"sequence_length":2}"#
                : #"{"name":"\#(kind)","kind":"\#(kind)","input_dim":4,"output_dim":2,"basis":6,"iterations":3"# + (kind == "mlp" ? "}" : #","nonnegative":true}"#)
            models.append(id(call("POST", "/v1/models", Array(body.utf8)), "model \(kind)"))
        }
        streamModel = id(call("POST", "/v1/models", Array(#"{"name":"stream","kind":"pfc","input_dim":4,"output_dim":2,"basis":40,"iterations":2}"#.utf8)), "stream model")
        // One streamed task on the pfc model: its ledger batches are what forget requests select.
        let ndjson = (0..<8).map { i in #"{"features":[\#(i % 2),0.5,\#(Double(i) / 8),1],"label":\#(i % 2)}"# }.joined(separator: "\n")
        let task = call("POST", "/v1/models/\(models[0])/tasks/stream?name=seed&batch_size=2&window=2&slide=0.5",
                        contentType: "application/x-ndjson", Array(ndjson.utf8))
        guard task.0 == 201 else { fatalError("fuzz setup: streamed task answered \(task.0): \(String(decoding: task.1, as: UTF8.self))") }
        let ledger = call("GET", "/v1/models/\(models[0])/ledger")
        let items = ((try? JSONSerialization.jsonObject(with: Data(ledger.1))) as? [String: Any])?["items"] as? [[String: Any]] ?? []
        let batch = items.first?["id"] as? String ?? "none"
        let analysis = call("POST", "/v1/models/\(models[0])/analyses", Array(#"{"dataset_id":"\#(flat)","components":2,"top_k":8,"steps":5,"examples":8}"#.utf8))
        let analysisID = id(analysis, "analysis")
        // Workers run only now, for the analysis (so fit, perturb and example grids reach past "not
        // ready"); the jobs fuzz inputs queue later stay queued.
        service.startWorkers()
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline {
            let a = call("GET", "/v1/analyses/\(analysisID)")
            let state = ((try? JSONSerialization.jsonObject(with: Data(a.1))) as? [String: Any])?["state"] as? String
            if state == "ready" { break }
            if state == "failed" { fatalError("fuzz setup: the analysis failed: \(String(decoding: a.1, as: UTF8.self))") }
            Thread.sleep(forTimeInterval: 0.05)
        }
        service.stopWorkers(deadline: .seconds(10))
        substitutions = [("$D", flat), ("$S", sequence), ("$B", batch), ("$A", analysisID)]
    }

    func run(_ data: [UInt8]) {
        guard data.count >= 2 else { return }
        let route = Self.routes[Int(data[0]) % Self.routes.count]
        let model = models[Int(data[1]) % models.count]
        let rest = data[2...]
        let nl = rest.firstIndex(of: 10) ?? rest.endIndex
        let query = substitute(Array(rest[rest.startIndex..<nl].prefix(1500)))
        let body = substitute(nl < rest.endIndex ? Array(rest[(nl + 1)...]) : [])
        var contentType = route.contentType
        if route.template == "/v1/datasets" { contentType = ["application/json", "text/csv", "application/x-ndjson"][Int(data[1] >> 4) % 3] }
        if route.method == "GET" { contentType = nil }
        // Real model creations stay small: 20 M weights per input would make the fuzzer crawl.
        if route.template == "/v1/models", route.method == "POST", let w = FuzzSurface.createdModelWeights(body), w > 50_000 { return }
        var target = route.path(self, model)
        if !query.isEmpty {
            target += "?" + query.map { b -> String in
                switch b {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                     UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: "&"), UInt8(ascii: "="), UInt8(ascii: ","):
                    return String(Unicode.Scalar(b))
                default: return String(format: "%%%02X", b)
                }
            }.joined()
        }
        let (status, answer) = call(route.method, target, contentType: contentType, route.method == "GET" ? [] : body)
        precondition(status != 0, "no answer from the server to \(route.method) \(target): \(lastFailure)")
        if Self.verbose {
            FileHandle.standardError.write(Data("\(status) \(route.method) \(target) \(String(decoding: answer.prefix(160), as: UTF8.self))\n".utf8))
        }
        if status >= 500 && status != 503 {
            let message = String(decoding: answer.prefix(300), as: UTF8.self)
            if ProcessInfo.processInfo.environment["PFC_FUZZ_500"] == "crash" {
                fatalError("\(status) from \(route.method) \(route.template): \(message)")
            }
            let signature = "\(status) \(route.method) \(route.template) " + message.replacingOccurrences(of: #"[0-9a-f-]{36}"#, with: "<id>", options: .regularExpression)
            if seen500.insert(signature).inserted {
                FileHandle.standardError.write(Data("FUZZ-500: \(signature)\n".utf8))
                let dir = ".build-fuzz/500s"
                try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
                _ = FileManager.default.createFile(atPath: "\(dir)/routes-\(seen500.count)-\(getpid())", contents: Data(data))
            }
        }
    }
}

/// A blocking HTTP/1.1 keep-alive client on one loopback socket.
final class Loopback {
    let fd: Int32
    var buffer: [UInt8] = []
    var open = true
    /// Why the last exchange failed.
    var failure = ""

    private func fail(_ what: String) -> (Int, [UInt8])? {
        failure = "\(what) (errno \(errno): \(String(cString: strerror(errno))))"
        open = false
        return nil
    }

    init(port: Int) {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var tv = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var rc: Int32
        repeat {
            rc = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        } while rc != 0 && errno == EINTR
        if rc != 0 && errno != EISCONN { open = false; failure = "connect failed (errno \(errno))" }
    }

    deinit { close(fd) }

    /// One request and its answer (status, body); nil when the connection failed or was closed.
    func send(method: String, target: String, headers: [(String, String)], body: [UInt8]) -> (Int, [UInt8])? {
        guard open else { if failure.isEmpty { failure = "the server closed the connection after the last answer" }; return nil }
        var head = "\(method) \(target) HTTP/1.1\r\nHost: fuzz\r\n"
        for (n, v) in headers { head += "\(n): \(v)\r\n" }
        if method != "GET" || !body.isEmpty { head += "Content-Length: \(body.count)\r\n" }
        head += "\r\n"
        let bytes = Array(head.utf8) + body
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }  // libFuzzer's timeout alarm (SIGALRM) interrupts blocking calls
            if n <= 0 { return fail("send") }
            sent += n
        }
        // The head.
        var end: Int?
        while end == nil {
            if let e = find([13, 10, 13, 10]) { end = e; break }
            guard fill() else { return fail("reading the head, \(buffer.count) bytes in") }
        }
        let headText = String(decoding: buffer[..<end!], as: UTF8.self)
        buffer.removeFirst(end! + 4)
        let lines = headText.components(separatedBy: "\r\n")
        let parts = lines[0].split(separator: " ")
        guard parts.count >= 2, let status = Int(parts[1]) else { return fail("bad status line \(lines[0])") }
        var length = 0, chunked = false, closeAfter = false
        for line in lines.dropFirst() {
            let kv = line.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            guard kv.count == 2 else { continue }
            if kv[0] == "content-length" { length = Int(kv[1]) ?? 0 }
            if kv[0] == "transfer-encoding", kv[1].contains("chunked") { chunked = true }
            if kv[0] == "connection", kv[1] == "close" { closeAfter = true }
        }
        var answer: [UInt8] = []
        if chunked {
            while true {
                guard let lineEnd = readLine() else { open = false; return nil }
                let size = Int(String(decoding: lineEnd, as: UTF8.self).split(separator: ";").first ?? "", radix: 16) ?? 0
                if size == 0 { _ = readLine(); break }
                while buffer.count < size + 2 { guard fill() else { open = false; return nil } }
                answer += buffer[..<size]
                buffer.removeFirst(size + 2)
            }
        } else {
            while buffer.count < length { guard fill() else { return fail("reading \(length) body bytes") } }
            answer = Array(buffer[..<length])
            buffer.removeFirst(length)
        }
        if closeAfter { open = false }
        return (status, answer)
    }

    private func readLine() -> [UInt8]? {
        while true {
            if let e = find([13, 10]) { let line = Array(buffer[..<e]); buffer.removeFirst(e + 2); return line }
            guard fill() else { return nil }
        }
    }

    private func find(_ pattern: [UInt8]) -> Int? {
        guard buffer.count >= pattern.count else { return nil }
        return (0...(buffer.count - pattern.count)).first { i in buffer[i..<(i + pattern.count)].elementsEqual(pattern) }
    }

    private func fill() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        var n: Int
        repeat { n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) } } while n < 0 && errno == EINTR
        guard n > 0 else { return false }
        buffer += chunk[..<n]
        return true
    }
}
