import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A small blocking HTTP/1.1 client over a real loopback socket, for end-to-end tests.
struct TestResponse {
    var status: Int
    var headers: [(String, String)]
    var body: Data

    func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name.lowercased() }?.1 }
    var json: Any? { try? JSONSerialization.jsonObject(with: body) }
    var object: [String: Any] { (json as? [String: Any]) ?? [:] }
    var errorCode: String? { (object["error"] as? [String: Any])?["code"] as? String }
    var errorMessage: String { ((object["error"] as? [String: Any])?["message"] as? String) ?? "" }
    var text: String { String(decoding: body, as: UTF8.self) }
}

final class TestClient {
    let port: Int
    var key: String?

    init(port: Int, key: String? = nil) {
        self.port = port
        self.key = key
    }

    /// Opens a connection to 127.0.0.1:port.
    func connect() throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var tv = timeval(tv_sec: 120, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0 else { close(fd); throw ClientError("connect failed: errno \(errno)") }
        return fd
    }

    struct ClientError: Error, CustomStringConvertible { let description: String; init(_ d: String) { description = d } }

    func request(_ method: String, _ path: String, body: Data? = nil, contentType: String? = "application/json",
                 headers: [(String, String)] = [], auth: Bool = true) throws -> TestResponse {
        let fd = try connect()
        defer { close(fd) }
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        if auth, let key { head += "Authorization: Bearer \(key)\r\n" }
        if let body {
            if let contentType { head += "Content-Type: \(contentType)\r\n" }
            head += "Content-Length: \(body.count)\r\n"
        }
        for (n, v) in headers { head += "\(n): \(v)\r\n" }
        head += "\r\n"
        try sendAll(fd, Array(head.utf8) + Array(body ?? Data()))
        return try readResponse(fd, method: method)
    }

    func json(_ method: String, _ path: String, _ object: Any) throws -> TestResponse {
        try request(method, path, body: try JSONSerialization.data(withJSONObject: object))
    }

    func sendAll(_ fd: Int32, _ bytes: [UInt8]) throws {
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw ClientError("send failed") }
            off += n
        }
    }

    /// Reads one whole response (Content-Length, chunked, or until close).
    func readResponse(_ fd: Int32, method: String = "GET") throws -> TestResponse {
        var reader = SocketReader(fd: fd)
        let (status, headers) = try reader.readHead()
        let h = TestResponse(status: status, headers: headers, body: Data())
        if method == "HEAD" || status == 204 || status == 304 { return h }
        var body = [UInt8]()
        if let te = h.header("Transfer-Encoding"), te.lowercased().contains("chunked") {
            while true {
                let line = try reader.readLine()
                guard let size = Int(line.split(separator: ";")[0], radix: 16) else { throw ClientError("bad chunk size \(line)") }
                if size == 0 { _ = try reader.readLine(); break }
                body += try reader.read(size)
                _ = try reader.readLine()
            }
        } else if let cl = h.header("Content-Length").flatMap(Int.init) {
            body = try reader.read(cl)
        } else {
            body = reader.readToEnd()
        }
        return TestResponse(status: status, headers: headers, body: Data(body))
    }

    /// Opens an SSE stream and calls `onEvent(name, data)` for each event until it returns false or the stream ends.
    func events(_ path: String, onEvent: (String, String) -> Bool) throws -> Int {
        let fd = try connect()
        defer { close(fd) }
        var head = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
        if let key { head += "Authorization: Bearer \(key)\r\n" }
        try sendAll(fd, Array((head + "\r\n").utf8))
        var reader = SocketReader(fd: fd)
        let (status, _) = try reader.readHead()
        guard status == 200 else { return status }
        var name = "message", data = ""
        var chunkLeft = 0
        var lineBuffer = [UInt8]()
        // The body is chunked: de-chunk on the fly, then split SSE lines.
        while true {
            if chunkLeft == 0 {
                let sizeLine = try reader.readLine()
                if sizeLine.isEmpty { continue }
                guard let size = Int(sizeLine, radix: 16) else { return status }
                if size == 0 { return status }
                chunkLeft = size
            }
            let bytes = try reader.read(chunkLeft)
            chunkLeft = 0
            _ = try reader.readLine()
            for b in bytes {
                if b != 10 { lineBuffer.append(b); continue }
                let line = String(decoding: lineBuffer, as: UTF8.self)
                lineBuffer.removeAll()
                if line.isEmpty {
                    if !data.isEmpty || name != "message" {
                        if !onEvent(name, data) { return status }
                    }
                    name = "message"; data = ""
                } else if line.hasPrefix("event:") {
                    name = line.dropFirst(6).trimmingCharacters(in: .whitespaces)
                } else if line.hasPrefix("data:") {
                    data += (data.isEmpty ? "" : "\n") + line.dropFirst(5).trimmingCharacters(in: .whitespaces)
                }
            }
        }
    }
}

struct SocketReader {
    let fd: Int32
    var buffer: [UInt8] = []

    init(fd: Int32) { self.fd = fd }

    mutating func fill() throws -> Bool {
        var tmp = [UInt8](repeating: 0, count: 65536)
        let n = tmp.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n <= 0 { return false }
        buffer += tmp[0..<n]
        return true
    }

    mutating func readLine() throws -> String {
        while true {
            if let i = buffer.firstIndex(of: 10) {
                var line = Array(buffer[..<i])
                buffer.removeFirst(i + 1)
                if line.last == 13 { line.removeLast() }
                return String(decoding: line, as: UTF8.self)
            }
            guard try fill() else { throw TestClient.ClientError("connection closed mid-line") }
        }
    }

    mutating func read(_ n: Int) throws -> [UInt8] {
        while buffer.count < n { guard try fill() else { throw TestClient.ClientError("connection closed mid-body") } }
        defer { buffer.removeFirst(n) }
        return Array(buffer[..<n])
    }

    mutating func readToEnd() -> [UInt8] {
        while (try? fill()) == true {}
        defer { buffer.removeAll() }
        return buffer
    }

    mutating func readHead() throws -> (Int, [(String, String)]) {
        var statusLine = try readLine()
        while statusLine.hasPrefix("HTTP/1.1 100") { _ = try readLine(); statusLine = try readLine() }
        let parts = statusLine.split(separator: " ")
        guard parts.count >= 2, let status = Int(parts[1]) else { throw TestClient.ClientError("bad status line \(statusLine)") }
        var headers: [(String, String)] = []
        while true {
            let line = try readLine()
            if line.isEmpty { break }
            if let c = line.firstIndex(of: ":") {
                headers.append((String(line[..<c]), line[line.index(after: c)...].trimmingCharacters(in: .whitespaces)))
            }
        }
        return (status, headers)
    }
}
