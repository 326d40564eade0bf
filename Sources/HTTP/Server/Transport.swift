// Transport: how a connection moves bytes: straight through its socket, or through a TLS session
// on it. Both are non-blocking; "would block" names the readiness to wait for, which the
// connection maps onto its Dispatch read and write sources.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// What one transport read or write did.
enum TransportIO: Equatable {
    /// The readiness a blocked operation waits for (a TLS read may need to write, and the reverse).
    enum Readiness { case readable, writable }
    /// This many bytes were read or written (> 0, or 0 for an empty write).
    case bytes(Int)
    /// The peer closed its side.
    case eof
    /// Nothing now; retry when the socket is ready.
    case wouldBlock(waitingFor: Readiness)
    /// A socket or protocol error: the connection is beyond saving.
    case failed
}

/// A connection's byte stream: a plain socket or TLS over it.
enum Transport {
    case plain(fd: Int32)
    case tls(fd: Int32, session: TLSSession)

    var isTLS: Bool { if case .tls = self { return true } else { return false } }

    /// True when a response can be written: always for plain sockets, after the handshake for TLS.
    var canWrite: Bool {
        switch self {
        case .plain: return true
        case .tls(_, let session): return session.isEstablished
        }
    }

    /// True when input waits inside the transport where the read source cannot see it.
    var hasBufferedInput: Bool {
        switch self {
        case .plain: return false
        case .tls(_, let session): return session.hasBufferedInput
        }
    }

    func read(into buffer: UnsafeMutableRawPointer, count: Int) -> TransportIO {
        switch self {
        case .plain(let fd):
            while true {
                let n = recv(fd, buffer, count, 0)
                if n > 0 { return .bytes(n) }
                if n == 0 { return .eof }
                switch errno {
                case EINTR: continue
                case EAGAIN, EWOULDBLOCK: return .wouldBlock(waitingFor: .readable)
                default: return .failed
                }
            }
        case .tls(_, let session):
            return session.read(into: buffer, count: count)
        }
    }

    func write(_ bytes: UnsafeRawBufferPointer) -> TransportIO {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return .bytes(0) }
        switch self {
        case .plain(let fd):
            while true {
                let n = send(fd, base, bytes.count, Socket.sendFlags)
                if n >= 0 { return .bytes(n) }
                switch errno {
                case EINTR: continue
                case EAGAIN, EWOULDBLOCK: return .wouldBlock(waitingFor: .writable)
                default: return .failed
                }
            }
        case .tls(_, let session):
            return session.write(bytes)
        }
    }

    /// Ends the output side: close_notify for TLS, then a TCP half-close.
    func closeWrite() {
        switch self {
        case .plain(let fd):
            _ = shutdown(fd, Int32(SHUT_WR))
        case .tls(let fd, let session):
            session.sendCloseNotify()
            _ = shutdown(fd, Int32(SHUT_WR))
        }
    }

    /// Why the TLS layer failed, when it did.
    var failureReason: String? {
        if case .tls(_, let session) = self { return session.lastError }
        return nil
    }

    /// Frees transport state; the caller closes the socket.
    func release() {
        if case .tls(_, let session) = self { session.free() }
    }
}
