// ResponseBodyWriter: the handle a streaming response body writes to, from the handler thread.
// Writes are framed (chunked on HTTP/1.1, raw on HTTP/1.0) and block while the socket is behind.

/// Writes a streamed response body; thread-safe; `write` blocks while the client reads slowly.
public final class ResponseBodyWriter: @unchecked Sendable {
    /// Thrown by `write` once the client has gone away (or the server is closing the connection).
    public struct ClientDisconnected: Error, Sendable {}

    private let gate: OutputGate
    private let chunked: Bool
    private let emit: @Sendable ([UInt8]) -> Void
    // Guarded by gate.lock.
    private var finished = false

    init(gate: OutputGate, chunked: Bool, emit: @escaping @Sendable ([UInt8]) -> Void) {
        self.gate = gate
        self.chunked = chunked
        self.emit = emit
    }

    /// Sends `bytes` as one piece of the body; blocks for backpressure; throws `ClientDisconnected`.
    public func write(_ bytes: [UInt8]) throws {
        guard !bytes.isEmpty else { return }
        guard send(bytes, blocking: true) else { throw ClientDisconnected() }
    }

    /// Sends a string's UTF-8 bytes.
    public func write(_ text: String) throws { try write(Array(text.utf8)) }

    /// True until the client goes away.
    public var isConnected: Bool { !gate.isClosed }

    /// Sends unless over the high-water mark (then drops); false when the client is gone.
    func tryWrite(_ bytes: [UInt8]) -> Bool { send(bytes, blocking: false) }

    private func send(_ bytes: [UInt8], blocking: Bool) -> Bool {
        let framed = chunked ? ChunkFraming.frame(bytes) : bytes
        return gate.acquire(framed.count, blocking: blocking) {
            if !finished { emit(framed) }
        }
    }

    /// Ends the body (the zero-size chunk); later writes are dropped. False when the client is gone.
    func finish(then done: @escaping @Sendable () -> Void) -> Bool {
        let terminator: [UInt8] = chunked ? Array("0\r\n\r\n".utf8) : []
        var ok = false
        _ = gate.acquire(terminator.count, blocking: true) {
            finished = true
            ok = true
            emit(terminator)
        }
        done()
        return ok
    }
}

enum ChunkFraming {
    /// `size-in-hex CRLF bytes CRLF`.
    static func frame(_ bytes: [UInt8]) -> [UInt8] {
        var out = Array(String(bytes.count, radix: 16).utf8)
        out.reserveCapacity(out.count + bytes.count + 4)
        out.append(0x0D); out.append(0x0A)
        out += bytes
        out.append(0x0D); out.append(0x0A)
        return out
    }
}
