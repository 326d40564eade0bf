// PushStream: a response body that outlives its handler. The handler returns at once with the
// stream; any thread then pushes bytes into it, and the connection's own serial queue writes them.
// No thread (handler or other) is held while the stream is open: writes are `queue.async` hops,
// and heartbeats come from a Dispatch timer on the connection's queue.
//
// Backpressure: each stream has a bounded buffer (`maxBufferedBytes`: bytes pushed but not yet
// taken by the kernel). A client that lets it fill is DISCONNECTED (reason `.overflow`) rather than
// events being dropped or merged silently: for job events a reconnect with `Last-Event-ID` gets the
// current state at once, which is the coalescing a slow client needs, done once and visibly.
// Producers never block.

import Dispatch
import Synchronization

/// A push-style streamed response body: write from any thread; never blocks.
public final class PushStream: Sendable {
    /// Why a stream closed.
    public enum CloseReason: Sendable, Equatable {
        /// The producer called `finish()` and the body was ended.
        case finished
        /// The client went away (or the connection was closed by a timeout or error).
        case clientGone
        /// The client read too slowly: `maxBufferedBytes` were pending; it was disconnected.
        case overflow
        /// The server is shutting down: the body was ended.
        case serverShutdown
    }

    /// Bytes pushed but not yet sent (chunk framing included) above which the client is dropped.
    public let maxBufferedBytes: Int
    /// Interval of heartbeat writes while the stream is open (nil: none).
    public let heartbeat: Duration?
    /// What a heartbeat writes (e.g. an SSE comment line); skipped while the client is behind.
    public let heartbeatBytes: [UInt8]

    struct State {
        var connection: Connection?
        var chunked = true
        var early: [[UInt8]] = []
        var earlyBytes = 0
        var unsent = 0
        var finishRequested = false
        var closed: CloseReason?
        var onClose: [@Sendable (CloseReason) -> Void] = []
        var heartbeats = 0
    }
    let state = Mutex(State())

    /// A stream; attach it to a response with `Response.push(_:)` (or `SSEWriter.pushResponse`).
    public init(maxBufferedBytes: Int = 256 * 1024, heartbeat: Duration? = nil, heartbeatBytes: [UInt8] = []) {
        self.maxBufferedBytes = max(1, maxBufferedBytes)
        self.heartbeat = heartbeat
        self.heartbeatBytes = heartbeatBytes
    }

    /// Queues `bytes` as one piece of the body. Returns false when the stream is closed (the
    /// client left, or this write would overflow the buffer, which disconnects the client).
    /// Writes before the response is on the wire are kept (within the same bound) and sent first.
    @discardableResult
    public func write(_ bytes: [UInt8]) -> Bool {
        guard !bytes.isEmpty else { return isOpen }
        var overflowed: Connection?
        var closeHandlers: [@Sendable (CloseReason) -> Void] = []
        let ok = state.withLock { s -> Bool in
            guard s.closed == nil, !s.finishRequested else { return false }
            if let connection = s.connection {
                let framed = s.chunked ? ChunkFraming.frame(bytes) : bytes
                if s.unsent + framed.count > maxBufferedBytes {
                    s.closed = .overflow
                    closeHandlers = s.onClose
                    s.onClose = []
                    overflowed = connection
                    return false
                }
                s.unsent += framed.count
                // Under the lock, so concurrent writers reach the queue in the order they wrote.
                connection.queue.async { connection.pushEnqueue(framed, from: self) }
                return true
            }
            if s.earlyBytes + bytes.count > maxBufferedBytes {
                s.closed = .overflow
                closeHandlers = s.onClose
                s.onClose = []
                return false
            }
            s.early.append(bytes)
            s.earlyBytes += bytes.count
            return true
        }
        if let overflowed { overflowed.queue.async { overflowed.pushOverflowed(self) } }
        for handler in closeHandlers { handler(.overflow) }
        return ok
    }

    /// Ends the body once everything written before has been queued; the connection then serves
    /// its next request (keep-alive) or closes. Idempotent.
    public func finish() {
        let connection = state.withLock { s -> Connection? in
            guard s.closed == nil, !s.finishRequested else { return nil }
            s.finishRequested = true
            return s.connection
        }
        if let connection { connection.queue.async { connection.pushFinish(self, reason: .finished) } }
    }

    /// Runs `handler` once when the stream closes, for whatever reason (at once when it already
    /// has). Runs on the connection's queue or the writing thread: it must not block.
    public func onClose(_ handler: @escaping @Sendable (CloseReason) -> Void) {
        let reason = state.withLock { s -> CloseReason? in
            if let closed = s.closed { return closed }
            s.onClose.append(handler)
            return nil
        }
        if let reason { handler(reason) }
    }

    /// True until the stream closes.
    public var isOpen: Bool { state.withLock { $0.closed == nil } }

    /// Why it closed, once it has.
    public var closeReason: CloseReason? { state.withLock { $0.closed } }

    /// Bytes pushed and not yet sent.
    public var pendingBytes: Int { state.withLock { $0.connection == nil ? $0.earlyBytes : $0.unsent } }

    /// Heartbeats written so far (for tests).
    public var heartbeatCount: Int { state.withLock { $0.heartbeats } }

    // MARK: connection side (on the connection's queue)

    /// The head is queued: take what was written early. Returns the framed bytes to send and
    /// whether the producer already finished.
    func attach(_ connection: Connection, chunked: Bool) -> (bytes: [UInt8], finished: Bool, closed: Bool) {
        state.withLock { s in
            if s.closed != nil { return ([], false, true) }
            s.connection = connection
            s.chunked = chunked
            var out: [UInt8] = []
            for piece in s.early { out += chunked ? ChunkFraming.frame(piece) : piece }
            s.early = []
            s.earlyBytes = 0
            s.unsent = out.count
            return (out, s.finishRequested, false)
        }
    }

    /// `count` of this stream's bytes left the process.
    func sent(_ count: Int) {
        state.withLock { $0.unsent = max(0, $0.unsent - count) }
    }

    /// The heartbeat timer fired: write the heartbeat unless the client is behind.
    func heartbeatDue() -> [UInt8]? {
        state.withLock { s -> [UInt8]? in
            guard s.closed == nil, !s.finishRequested, s.unsent == 0, !heartbeatBytes.isEmpty else { return nil }
            let framed = s.chunked ? ChunkFraming.frame(heartbeatBytes) : heartbeatBytes
            s.unsent += framed.count
            s.heartbeats += 1
            return framed
        }
    }

    /// Marks the stream closed and runs the close handlers (once).
    func markClosed(_ reason: CloseReason) {
        let handlers = state.withLock { s -> [@Sendable (CloseReason) -> Void] in
            guard s.closed == nil else { return [] }
            s.closed = reason
            s.connection = nil
            let h = s.onClose
            s.onClose = []
            return h
        }
        for handler in handlers { handler(reason) }
    }

    /// Drops the connection reference (breaks the cycle once the connection is done with it).
    func detach() { state.withLock { $0.connection = nil } }
}

/// A response whose head and body are given later, from any thread (`respond`). The handler
/// returns it at once; the connection waits (holding no thread) for the answer. Middleware that
/// ran when the handler returned saw the placeholder: to record the final status it registers
/// `whenAnswered` (the access log and the metrics do).
public final class DeferredResponse: Sendable {
    struct State {
        var connection: Connection?
        var pending: Response?
        var answered = false
        var gone = false
        var onCancel: [@Sendable () -> Void] = []
        var observers: [@Sendable (Response) -> Void] = []
        var answer: Response?  // kept for an observer registered after the answer
    }
    let state = Mutex(State())

    /// A deferred answer; return `Response.deferred(self)` from the handler.
    public init() {}

    /// Gives the answer (the first call wins; later ones are ignored). Any thread.
    public func respond(_ response: Response) {
        let (connection, observers) = state.withLock { s -> (Connection?, [@Sendable (Response) -> Void]) in
            guard !s.answered else { return (nil, []) }
            s.answered = true
            s.answer = response
            if s.connection == nil { s.pending = response }
            let o = s.observers
            s.observers = []
            return (s.connection, o)
        }
        // Observers first: the access log's line exists before the client can see the answer.
        for observe in observers { observe(response) }
        connection?.deliverDeferred(response)
    }

    /// Runs `observer` once with the answer: when `respond` gives it (on that thread), or at once
    /// if it was already given. Middleware uses it to log and count the final status and latency.
    /// Never runs if no answer is ever given.
    public func whenAnswered(_ observer: @escaping @Sendable (Response) -> Void) {
        let given = state.withLock { s -> Response? in
            if s.answered { return s.answer }
            s.observers.append(observer)
            return nil
        }
        if let given { observer(given) }
    }

    /// True once the client went away before the answer (its work may stop).
    public var isCancelled: Bool { state.withLock { $0.gone } }

    /// Runs `handler` once if the client goes away before the answer was given.
    public func onCancel(_ handler: @escaping @Sendable () -> Void) {
        let now = state.withLock { s -> Bool in
            if s.gone { return true }
            s.onCancel.append(handler)
            return false
        }
        if now { handler() }
    }

    /// On the connection queue: the connection now waits for the answer; returns one already given.
    func attach(_ connection: Connection) -> Response? {
        state.withLock { s in
            s.connection = connection
            let p = s.pending
            s.pending = nil
            return p
        }
    }

    /// The connection closed before the answer.
    func cancel() {
        let handlers = state.withLock { s -> [@Sendable () -> Void] in
            s.connection = nil
            guard !s.gone, !s.answered else { return [] }
            s.gone = true
            let h = s.onCancel
            s.onCancel = []
            return h
        }
        for h in handlers { h() }
    }

    func detach() { state.withLock { $0.connection = nil } }
}
