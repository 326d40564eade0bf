// TLSSession: one connection's SSL object over its non-blocking socket. Reads and writes report
// WANT_READ / WANT_WRITE as "would block, waiting for readable / writable", which the connection
// turns into its Dispatch read and write sources. The handshake happens inside the first reads.
//
// Used only on its connection's serial queue (hence `@unchecked Sendable`).

internal import CSSL
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

final class TLSSession: @unchecked Sendable {
    private let ssl: OpaquePointer
    private var freed = false
    /// OpenSSL's reason for the last protocol failure (a refused version, a bad record, …).
    private(set) var lastError: String?

    init(ssl: OpaquePointer) { self.ssl = ssl }

    deinit { free() }

    /// Releases the SSL object (the socket stays open: SSL_set_fd does not own it).
    func free() {
        guard !freed else { return }
        freed = true
        SSL_free(ssl)
    }

    /// True once the handshake has completed.
    var isEstablished: Bool { !freed && SSL_is_init_finished(ssl) == 1 }

    /// True when decrypted or received-but-unprocessed bytes wait inside OpenSSL, where the read
    /// source cannot see them.
    var hasBufferedInput: Bool { !freed && (SSL_pending(ssl) > 0 || SSL_has_pending(ssl) == 1) }

    /// "TLSv1.3", "TLSv1.2", …
    var protocolName: String { String(cString: SSL_get_version(ssl)) }

    /// SSL_read: decrypted bytes, EOF, or would-block (handshake included).
    func read(into buffer: UnsafeMutableRawPointer, count: Int) -> TransportIO {
        guard !freed else { return .failed }
        ERR_clear_error()
        let n = SSL_read(ssl, buffer, Int32(clamping: count))
        if n > 0 { return .bytes(Int(n)) }
        return outcome(of: n, reading: true)
    }

    /// SSL_write of a prefix of `bytes` (partial writes are on); after a would-block the caller
    /// retries with the same bytes first (they may have moved, and more may follow them).
    func write(_ bytes: UnsafeRawBufferPointer) -> TransportIO {
        guard !freed else { return .failed }
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return .bytes(0) }
        ERR_clear_error()
        let n = SSL_write(ssl, base, Int32(clamping: bytes.count))
        if n > 0 { return .bytes(Int(n)) }
        return outcome(of: n, reading: false)
    }

    /// Sends close_notify (best effort: a full socket buffer just loses it).
    func sendCloseNotify() {
        guard isEstablished else { return }
        ERR_clear_error()
        _ = SSL_shutdown(ssl)
        ERR_clear_error()
    }

    private func outcome(of result: Int32, reading: Bool) -> TransportIO {
        let code = SSL_get_error(ssl, result)
        switch code {
        case SSL_ERROR_WANT_READ:
            return .wouldBlock(waitingFor: .readable)
        case SSL_ERROR_WANT_WRITE:
            return .wouldBlock(waitingFor: .writable)
        case SSL_ERROR_ZERO_RETURN:
            return reading ? .eof : .failed
        case SSL_ERROR_SYSCALL:
            let e = errno
            ERR_clear_error()
            if e == EINTR { return .wouldBlock(waitingFor: reading ? .readable : .writable) }
            return reading && result == 0 ? .eof : .failed
        default:  // SSL_ERROR_SSL: a protocol failure (bad handshake, refused version, …)
            lastError = drainOpenSSLErrors().joined(separator: "; ")
            return .failed
        }
    }
}
