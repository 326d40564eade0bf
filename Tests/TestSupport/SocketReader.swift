// SocketReader: buffered reads of HTTP/1.1 responses from a socket (or a TLS session on it).
import CSSL
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Reads lines, exact byte counts, chunks and whole responses from one connection.
package struct SocketReader {
    package let fd: Int32
    /// Reads go through this TLS session when set.
    var ssl: OpaquePointer?
    package var buffer: [UInt8] = []

    package init(fd: Int32) { self.fd = fd }

    /// Reads more bytes into the buffer; false at EOF (or a reset); throws on a timeout or error.
    package mutating func fill() throws -> Bool {
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        if let ssl {
            ERR_clear_error()
            let n = chunk.withUnsafeMutableBytes { SSL_read(ssl, $0.baseAddress!, Int32($0.count)) }
            if n > 0 { buffer += chunk[0..<Int(n)]; return true }
            let code = SSL_get_error(ssl, n)
            if code == SSL_ERROR_ZERO_RETURN { return false }
            if code == SSL_ERROR_SYSCALL && (errno == 0 || errno == ECONNRESET || n == 0) { return false }
            throw TestClientError("SSL_read: error \(code), errno \(errno)")
        }
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
            if n > 0 { buffer += chunk[0..<n]; return true }
            if n == 0 { return false }
            if errno == EINTR { continue }
            if errno == ECONNRESET { return false }
            throw TestClientError("recv: \(String(cString: strerror(errno)))")
        }
    }

    /// One line without its CR LF.
    package mutating func readLine() throws -> String {
        while true {
            if let i = buffer.firstIndex(of: 10) {
                var line = Array(buffer[..<i])
                buffer.removeFirst(i + 1)
                if line.last == 13 { line.removeLast() }
                return String(decoding: line, as: UTF8.self)
            }
            guard try fill() else { throw TestClientError("connection closed mid-line") }
        }
    }

    /// Exactly `n` bytes.
    package mutating func read(_ n: Int) throws -> [UInt8] {
        while buffer.count < n { guard try fill() else { throw TestClientError("connection closed mid-body") } }
        defer { buffer.removeFirst(n) }
        return Array(buffer[..<n])
    }

    /// Everything until the peer closes (or the read times out).
    package mutating func readToEnd() -> [UInt8] {
        while (try? fill()) == true {}
        defer { buffer.removeAll() }
        return buffer
    }

    /// The status line and header fields; `skipInterim` reads past `100 Continue` responses.
    package mutating func readHead(skipInterim: Bool = true) throws -> (Int, [(String, String)]) {
        while true {
            let statusLine = try readLine()
            let parts = statusLine.split(separator: " ", maxSplits: 2)
            guard parts.count >= 2, let status = Int(parts[1]) else { throw TestClientError("bad status line '\(statusLine)'") }
            var headers: [(String, String)] = []
            while true {
                let line = try readLine()
                if line.isEmpty { break }
                guard let colon = line.firstIndex(of: ":") else { throw TestClientError("bad header '\(line)'") }
                headers.append((String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
            }
            if skipInterim && status == 100 { continue }
            return (status, headers)
        }
    }

    /// One response: head, then the body by Content-Length, chunked coding, or until close.
    package mutating func readResponse(head: Bool, skipInterim: Bool) throws -> TestResponse {
        let (status, headers) = try readHead(skipInterim: skipInterim)
        var response = TestResponse(status: status, headers: headers, body: Data())
        if head || status < 200 || status == 204 || status == 304 { return response }
        if let te = response.header("Transfer-Encoding"), te.lowercased().contains("chunked") {
            var body = [UInt8]()
            while let chunk = try readChunk() { body += chunk }
            response.body = Data(body)
        } else if let length = response.header("Content-Length").flatMap(Int.init) {
            response.body = Data(try read(length))
        } else {
            response.body = Data(readToEnd())
        }
        return response
    }

    /// One chunk of a chunked body; nil at the last chunk (whose trailer section it reads).
    package mutating func readChunk() throws -> [UInt8]? {
        var sizeLine = try readLine()
        while sizeLine.isEmpty { sizeLine = try readLine() }
        guard let size = Int(sizeLine.split(separator: ";")[0].trimmingCharacters(in: .whitespaces), radix: 16) else {
            throw TestClientError("bad chunk size '\(sizeLine)'")
        }
        if size == 0 {
            while try !readLine().isEmpty {}
            return nil
        }
        let data = try read(size)
        _ = try read(2)
        return data
    }

    /// True when the peer closes within the read timeout, after discarding anything unread.
    package mutating func waitForClose() -> Bool {
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
}
