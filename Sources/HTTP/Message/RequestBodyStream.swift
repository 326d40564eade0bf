// RequestBodyStream: a request body read by a handler thread with blocking `next()`, fed by the
// connection queue. A bounded buffer gives backpressure: when it is full the connection stops
// reading the socket, and resumes once the handler has drained it below half.

/// A streamed request body; `next()` blocks until bytes arrive, returns nil at the end.
public final class RequestBodyStream: @unchecked Sendable {
    // Guarded by `lock`.
    private let lock = ConditionLock()
    private var chunks: [[UInt8]] = []
    private var head = 0
    private var buffered = 0
    private var finished = false
    private var failure: (any Error)?
    private var storedTrailers = HTTPHeaders()
    private var paused = false
    private var consumed = false
    private var peak = 0

    /// Bytes buffered before the connection pauses reading.
    let capacity: Int
    /// Called (off the lock) when a paused producer may resume.
    private let onDrain: @Sendable () -> Void

    init(capacity: Int, onDrain: @escaping @Sendable () -> Void) {
        self.capacity = capacity
        self.onDrain = onDrain
    }

    /// The next chunk of body bytes, nil at the end; blocks while none is buffered.
    /// Throws an `HTTPError` (413, 408, 400) when the body turned out bad, or the client went away.
    public func next() throws -> [UInt8]? {
        lock.lock()
        while head == chunks.count && !finished && failure == nil { lock.wait() }
        if head < chunks.count {
            let chunk = chunks[head]
            head += 1
            buffered -= chunk.count
            if head > 64 && head * 2 > chunks.count { chunks.removeFirst(head); head = 0 }
            let resume = paused && buffered <= capacity / 2
            if resume { paused = false }
            lock.unlock()
            if resume { onDrain() }
            return chunk
        }
        if let failure { lock.unlock(); throw failure }
        consumed = true
        lock.unlock()
        return nil
    }

    /// Trailer fields of a chunked body (valid once `next()` returned nil).
    public var trailers: HTTPHeaders { lock.withLock { storedTrailers } }

    /// Connection side: appends bytes; returns false when the buffer is full and reading must pause.
    func append(_ bytes: [UInt8]) -> Bool {
        lock.lock()
        chunks.append(bytes)
        buffered += bytes.count
        peak = max(peak, buffered)
        let full = buffered >= capacity
        if full { paused = true }
        lock.signal()
        lock.unlock()
        return !full
    }

    /// Connection side: the body is complete.
    func finish(trailers: HTTPHeaders) {
        lock.withLock { finished = true; storedTrailers = trailers; lock.broadcast() }
    }

    /// Connection side: the body failed (limit, timeout, client gone).
    func fail(_ error: any Error) {
        lock.withLock { if !finished { failure = error }; lock.broadcast() }
    }

    /// The most bytes ever buffered at once (for tests of the memory bound).
    var peakBuffered: Int { lock.withLock { peak } }

    /// True once the handler read the end of the body.
    var isFullyConsumed: Bool { lock.withLock { consumed } }
}
