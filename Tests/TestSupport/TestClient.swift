// TestClient: a small blocking HTTP/1.1 client over real loopback sockets, for every suite that
// talks to a running server. Two ways to use it:
// - an API client (`init(port:key:)`): each `request`/`json`/`events` call opens its own connection
//   and sends the client's bearer key;
// - one raw connection (`init(port:timeout:source:)`, connected at once, optionally TLS): `send`
//   writes bytes exactly as given and `readResponse` reads what comes back, so malformed requests
//   reach the server as written.
import CSSL
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What a test client failed at (connect, send, a malformed response, a timeout).
package struct TestClientError: Error, CustomStringConvertible {
    package let description: String
    package init(_ description: String) { self.description = description }
    package init(description: String) { self.description = description }
}

/// One response as read off the socket.
package struct TestResponse {
    package var status: Int
    package var headers: [(String, String)]
    package var body: Data

    package func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name.lowercased() }?.1 }
    package var text: String { String(decoding: body, as: UTF8.self) }
    package var json: Any? { try? JSONSerialization.jsonObject(with: body) }
    package var object: [String: Any] { (json as? [String: Any]) ?? [:] }
    package var errorCode: String? { (object["error"] as? [String: Any])?["code"] as? String }
    package var errorMessage: String { ((object["error"] as? [String: Any])?["message"] as? String) ?? "" }
}

/// A loopback HTTP/1.1 client: an API client with a key, or one raw (optionally TLS) connection.
package final class TestClient {
    package let port: Int
    /// The bearer key `request`, `json` and `events` send (nil: none).
    package var key: String?
    /// The held connection's socket (-1 for an API client, which connects per request).
    package let fd: Int32
    private var reader: SocketReader?
    /// The TLS session after `startTLS`; nil for plain HTTP.
    private var ssl: OpaquePointer?
    private var sslContext: OpaquePointer?

    /// An API client: every request opens its own connection and sends `key`.
    package init(port: Int, key: String?) {
        self.port = port
        self.key = key
        fd = -1
    }

    /// One connection to 127.0.0.1:`port`, made now (from `source`, e.g. "127.0.0.2", when given);
    /// reads time out after `timeout` seconds.
    package init(port: Int, timeout: Double = 15, source: String? = nil) throws {
        self.port = port
        fd = try Self.openSocket(port: port, source: source, timeout: timeout)
        reader = SocketReader(fd: fd)
    }

    deinit {
        if let ssl { SSL_free(ssl) }
        if let sslContext { SSL_CTX_free(sslContext) }
        if fd >= 0 { Glibc.close(fd) }
    }

    // MARK: API client: one connection per request

    /// Opens a new connection to 127.0.0.1:port (reads time out after 120 s); the caller closes it.
    package func connect() throws -> Int32 { try Self.openSocket(port: port, source: nil, timeout: 120) }

    /// One request on a new connection (`Connection: close`), with the key unless `auth` is false.
    package func request(_ method: String, _ path: String, body: Data? = nil, contentType: String? = "application/json",
                         headers: [(String, String)] = [], auth: Bool = true) throws -> TestResponse {
        let fd = try connect()
        defer { Glibc.close(fd) }
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

    /// A JSON request: `object` serialised as the body.
    package func json(_ method: String, _ path: String, _ object: Any) throws -> TestResponse {
        try request(method, path, body: try JSONSerialization.data(withJSONObject: object))
    }

    /// Sends every byte on `fd` (blocking).
    package func sendAll(_ fd: Int32, _ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw TestClientError("send: \(String(cString: strerror(errno)))") }
            offset += n
        }
    }

    /// Reads one whole response from `fd` (interim 100s skipped; Content-Length, chunked, or until close).
    package func readResponse(_ fd: Int32, method: String = "GET") throws -> TestResponse {
        var reader = SocketReader(fd: fd)
        return try reader.readResponse(head: method == "HEAD", skipInterim: true)
    }

    /// Opens an SSE stream and calls `onEvent(name, data)` for each event until it returns false or
    /// the stream ends; returns the response status.
    package func events(_ path: String, onEvent: (String, String) -> Bool) throws -> Int {
        let fd = try connect()
        defer { Glibc.close(fd) }
        var head = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
        if let key { head += "Authorization: Bearer \(key)\r\n" }
        try sendAll(fd, Array((head + "\r\n").utf8))
        var reader = SocketReader(fd: fd)
        let (status, _) = try reader.readHead(skipInterim: true)
        guard status == 200 else { return status }
        var name = "message", data = ""
        var lineBuffer = [UInt8]()
        // The body is chunked: de-chunk on the fly, then split SSE lines.
        while let bytes = try reader.readChunk() {
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
        return status
    }

    // MARK: One held connection

    /// Handshakes TLS (blocking) on the held connection trusting only `caFile`, with SNI and host
    /// check `serverName`; `maxVersion` (e.g. TLS1_2_VERSION) caps what the client offers.
    package func startTLS(caFile: String, serverName: String = "localhost", maxVersion: Int32? = nil) throws {
        guard let ctx = SSL_CTX_new(TLS_client_method()) else { throw TestClientError("SSL_CTX_new") }
        sslContext = ctx
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nil)
        guard SSL_CTX_load_verify_locations(ctx, caFile, nil) == 1 else { throw TestClientError("load CA \(caFile)") }
        pfc_ssl_ctx_ignore_unexpected_eof(ctx)
        if let maxVersion { _ = pfc_ssl_ctx_set_max_proto_version(ctx, maxVersion) }
        guard let ssl = SSL_new(ctx) else { throw TestClientError("SSL_new") }
        self.ssl = ssl
        SSL_set_fd(ssl, fd)
        _ = pfc_ssl_set_host_name(ssl, serverName)
        _ = SSL_set1_host(ssl, serverName)
        ERR_clear_error()
        guard SSL_connect(ssl) == 1 else {
            var text = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(ERR_get_error(), &text, text.count)
            throw TestClientError("TLS handshake: \(String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))")
        }
        reader?.ssl = ssl
    }

    /// "TLSv1.3" after `startTLS`.
    package var tlsVersion: String? { ssl.map { String(cString: SSL_get_version($0)) } }

    /// SHA-256 (hex) of the server's leaf certificate after `startTLS`.
    package var peerCertificateSHA256: String? {
        guard let ssl, let cert = pfc_ssl_get1_peer_certificate(ssl) else { return nil }
        defer { X509_free(cert) }
        var md = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        guard X509_digest(cert, EVP_sha256(), &md, &length) == 1 else { return nil }
        return md.prefix(Int(length)).map { String(format: "%02x", $0) }.joined()
    }

    /// Sets the held connection's send and receive timeouts.
    package func setTimeout(_ seconds: Double) { Self.setTimeout(fd, seconds) }

    /// Sends every byte on the held connection (blocking); throws when the peer is gone.
    package func send(_ bytes: [UInt8]) throws {
        guard let ssl else { return try sendAll(heldFD(), bytes) }
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { SSL_write(ssl, $0.baseAddress!, Int32($0.count)) }
            guard n > 0 else { throw TestClientError("SSL_write: error \(SSL_get_error(ssl, n))") }
            offset += Int(n)
        }
    }

    package func send(_ text: String) throws { try send(Array(text.utf8)) }

    /// Reads one response on the held connection (an interim 1xx is returned as one); `head` for HEAD.
    package func readResponse(head: Bool = false) throws -> TestResponse {
        try heldReader { try $0.readResponse(head: head, skipInterim: false) }
    }

    /// Reads one chunk of a chunked body as it arrives (for SSE); nil at the last chunk.
    package func readChunk() throws -> [UInt8]? { try heldReader { try $0.readChunk() } }

    /// True when the server closes the connection (EOF or reset) within the read timeout,
    /// after discarding anything still unread.
    package func waitForClose() -> Bool { (try? heldReader { $0.waitForClose() }) ?? false }

    /// One request with a body, as bytes.
    package static func request(_ method: String, _ path: String, headers: [String] = [], body: [UInt8]? = nil) -> [UInt8] {
        var text = "\(method) \(path) HTTP/1.1\r\nHost: test\r\n"
        for h in headers { text += h + "\r\n" }
        if let body { text += "Content-Length: \(body.count)\r\n" }
        text += "\r\n"
        return Array(text.utf8) + (body ?? [])
    }

    // MARK: Sockets

    private func heldFD() throws -> Int32 {
        guard fd >= 0 else { throw TestClientError("this TestClient holds no connection: use init(port:timeout:source:)") }
        return fd
    }

    private func heldReader<T>(_ body: (inout SocketReader) throws -> T) throws -> T {
        guard var r = reader else { _ = try heldFD(); throw TestClientError("no connection") }
        defer { reader = r }
        return try body(&r)
    }

    private static func openSocket(port: Int, source: String?, timeout: Double) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestClientError("socket: \(String(cString: strerror(errno)))") }
        func fail(_ what: String) -> TestClientError {
            let e = errno
            Glibc.close(fd)
            return TestClientError("\(what): \(String(cString: strerror(e)))")
        }
        if let source {
            var local = sockaddr_in()
            local.sin_family = sa_family_t(AF_INET)
            local.sin_addr.s_addr = inet_addr(source)
            let rc = withUnsafePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard rc == 0 else { throw fail("bind \(source)") }
        }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { throw fail("connect") }
        setTimeout(fd, timeout)
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        return fd
    }

    private static func setTimeout(_ fd: Int32, _ seconds: Double) {
        var tv = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - Double(Int(seconds))) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }
}
