// TestClient: a small blocking raw-socket HTTP/1.1 client for loopback tests (no HTTP library in
// between, so malformed bytes reach the server exactly as written).

import CSSL
import Foundation
#if canImport(Glibc)
import Glibc
#endif

struct TestClientError: Error, CustomStringConvertible {
    let description: String
}

struct TestResponse {
    var status: Int
    var headers: [(String, String)]
    var body: [UInt8]

    func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name.lowercased() }?.1 }
    var text: String { String(decoding: body, as: UTF8.self) }
}

final class TestClient {
    let fd: Int32
    private var buffer: [UInt8] = []
    /// The TLS session after `startTLS`; nil for plain HTTP.
    private var ssl: OpaquePointer?
    private var sslContext: OpaquePointer?

    /// Connects to 127.0.0.1:`port` (from `source`, e.g. "127.0.0.2", when given); reads time out
    /// after `timeout` seconds.
    init(port: Int, timeout: Double = 15, source: String? = nil) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        if let source {
            var local = sockaddr_in()
            local.sin_family = sa_family_t(AF_INET)
            local.sin_addr.s_addr = inet_addr(source)
            let rc = withUnsafePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard rc == 0 else {
                let e = errno
                Glibc.close(fd)
                throw TestClientError(description: "bind \(source): \(String(cString: strerror(e)))")
            }
        }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            let e = errno
            Glibc.close(fd)
            throw TestClientError(description: "connect: \(String(cString: strerror(e)))")
        }
        setTimeout(timeout)
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    deinit {
        if let ssl { SSL_free(ssl) }
        if let sslContext { SSL_CTX_free(sslContext) }
        Glibc.close(fd)
    }

    /// Handshakes TLS (blocking) trusting only `caFile`, with SNI and host check `serverName`;
    /// `maxVersion` (e.g. TLS1_2_VERSION) caps what the client offers.
    func startTLS(caFile: String, serverName: String = "localhost", maxVersion: Int32? = nil) throws {
        guard let ctx = SSL_CTX_new(TLS_client_method()) else { throw TestClientError(description: "SSL_CTX_new") }
        sslContext = ctx
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nil)
        guard SSL_CTX_load_verify_locations(ctx, caFile, nil) == 1 else { throw TestClientError(description: "load CA \(caFile)") }
        pfc_ssl_ctx_ignore_unexpected_eof(ctx)
        if let maxVersion { _ = pfc_ssl_ctx_set_max_proto_version(ctx, maxVersion) }
        guard let ssl = SSL_new(ctx) else { throw TestClientError(description: "SSL_new") }
        self.ssl = ssl
        SSL_set_fd(ssl, fd)
        _ = pfc_ssl_set_host_name(ssl, serverName)
        _ = SSL_set1_host(ssl, serverName)
        ERR_clear_error()
        guard SSL_connect(ssl) == 1 else {
            var text = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(ERR_get_error(), &text, text.count)
            throw TestClientError(description: "TLS handshake: \(String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))")
        }
    }

    /// "TLSv1.3" after `startTLS`.
    var tlsVersion: String? { ssl.map { String(cString: SSL_get_version($0)) } }

    /// SHA-256 (hex) of the server's leaf certificate after `startTLS`.
    var peerCertificateSHA256: String? {
        guard let ssl, let cert = pfc_ssl_get1_peer_certificate(ssl) else { return nil }
        defer { X509_free(cert) }
        var md = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        guard X509_digest(cert, EVP_sha256(), &md, &length) == 1 else { return nil }
        return md.prefix(Int(length)).map { String(format: "%02x", $0) }.joined()
    }

    func setTimeout(_ seconds: Double) {
        var tv = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - Double(Int(seconds))) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Sends every byte (blocking); throws when the peer is gone.
    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            if let ssl {
                let n = bytes[offset...].withUnsafeBytes { SSL_write(ssl, $0.baseAddress!, Int32($0.count)) }
                guard n > 0 else { throw TestClientError(description: "SSL_write: error \(SSL_get_error(ssl, n))") }
                offset += Int(n)
                continue
            }
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress!, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 {
                if n < 0 && errno == EINTR { continue }
                throw TestClientError(description: "send: \(String(cString: strerror(errno)))")
            }
            offset += n
        }
    }

    func send(_ text: String) throws { try send(Array(text.utf8)) }

    /// Reads more bytes into the buffer; false at EOF; throws on timeout or error.
    private func fill() throws -> Bool {
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        if let ssl {
            ERR_clear_error()
            let n = chunk.withUnsafeMutableBytes { SSL_read(ssl, $0.baseAddress!, Int32($0.count)) }
            if n > 0 { buffer += chunk[0..<Int(n)]; return true }
            let code = SSL_get_error(ssl, n)
            if code == SSL_ERROR_ZERO_RETURN { return false }
            if code == SSL_ERROR_SYSCALL && (errno == 0 || errno == ECONNRESET || n == 0) { return false }
            throw TestClientError(description: "SSL_read: error \(code), errno \(errno)")
        }
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
            if n > 0 { buffer += chunk[0..<n]; return true }
            if n == 0 { return false }
            if errno == EINTR { continue }
            if errno == ECONNRESET { return false }
            throw TestClientError(description: "recv: \(String(cString: strerror(errno)))")
        }
    }

    private func readLine() throws -> String {
        while true {
            if let i = buffer.firstIndex(of: 0x0A) {
                let line = buffer[0..<i]
                buffer.removeFirst(i + 1)
                return String(decoding: line.last == 0x0D ? line.dropLast() : line, as: UTF8.self)
            }
            guard try fill() else { throw TestClientError(description: "EOF inside a line") }
        }
    }

    private func readExactly(_ n: Int) throws -> [UInt8] {
        while buffer.count < n { guard try fill() else { throw TestClientError(description: "EOF inside a body") } }
        let out = Array(buffer[0..<n])
        buffer.removeFirst(n)
        return out
    }

    /// Reads one response (an interim 1xx included); `head` for responses to HEAD.
    func readResponse(head: Bool = false) throws -> TestResponse {
        let statusLine = try readLine()
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, let status = Int(parts[1]) else { throw TestClientError(description: "bad status line '\(statusLine)'") }
        var headers: [(String, String)] = []
        while true {
            let line = try readLine()
            if line.isEmpty { break }
            guard let colon = line.firstIndex(of: ":") else { throw TestClientError(description: "bad header '\(line)'") }
            headers.append((String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
        }
        var response = TestResponse(status: status, headers: headers, body: [])
        if head || status < 200 || status == 204 || status == 304 { return response }
        if let length = response.header("Content-Length").flatMap(Int.init) {
            response.body = try readExactly(length)
        } else if response.header("Transfer-Encoding")?.lowercased() == "chunked" {
            while true {
                let sizeLine = try readLine()
                guard let size = Int(sizeLine.split(separator: ";")[0], radix: 16) else { throw TestClientError(description: "bad chunk size") }
                if size == 0 {
                    while try !readLine().isEmpty {}
                    break
                }
                response.body += try readExactly(size)
                _ = try readExactly(2)
            }
        } else {
            while try fill() {}
            response.body = buffer
            buffer = []
        }
        return response
    }

    /// Reads one chunk of a chunked body as it arrives (for SSE); nil at the last chunk.
    func readChunk() throws -> [UInt8]? {
        let sizeLine = try readLine()
        guard let size = Int(sizeLine, radix: 16) else { throw TestClientError(description: "bad chunk size '\(sizeLine)'") }
        if size == 0 {
            while try !readLine().isEmpty {}  // trailers and the final CRLF: the connection may be reused
            return nil
        }
        let data = try readExactly(size)
        _ = try readExactly(2)
        return data
    }

    /// True when the server closes the connection (EOF or reset) within the read timeout,
    /// after discarding anything still unread.
    func waitForClose() -> Bool {
        buffer = []
        while true {
            do {
                if try !fill() { return true }
                buffer = []
            } catch {
                return false
            }
        }
    }

    /// One request with a body, as bytes.
    static func request(_ method: String, _ path: String, headers: [String] = [], body: [UInt8]? = nil) -> [UInt8] {
        var text = "\(method) \(path) HTTP/1.1\r\nHost: test\r\n"
        for h in headers { text += h + "\r\n" }
        if let body { text += "Content-Length: \(body.count)\r\n" }
        text += "\r\n"
        return Array(text.utf8) + (body ?? [])
    }
}
