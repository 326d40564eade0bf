// OutputGate: the backpressure between a handler thread producing a streamed response and the
// connection queue sending it. Producers block while more than `highWater` bytes wait to be sent.

/// Shared between one streaming response's writer threads and its connection queue.
final class OutputGate: @unchecked Sendable {
    // Guarded by `lock`.
    let lock = ConditionLock()
    private(set) var pending = 0
    private(set) var closed = false
    private var waiters = 0
    let highWater: Int

    init(highWater: Int) { self.highWater = highWater }

    /// Blocks while over the high-water mark; then runs `emit` under the lock so emits stay ordered.
    /// Returns false (without emitting) when the connection is gone.
    func acquire(_ count: Int, blocking: Bool, emit: () -> Void) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        while pending > highWater && !closed {
            if !blocking { return true }  // skip: a heartbeat is not worth waiting for
            waiters += 1
            lock.wait()
            waiters -= 1
        }
        if closed { return false }
        pending += count
        emit()
        return true
    }

    /// Connection side: `count` bytes left the process.
    func sent(_ count: Int) {
        lock.lock()
        pending -= count
        if waiters > 0 && pending <= highWater / 2 { lock.broadcast() }
        lock.unlock()
    }

    /// Connection side: the peer is gone; wakes and fails every producer.
    func close() {
        lock.withLock { closed = true; lock.broadcast() }
    }

    var isClosed: Bool { lock.withLock { closed } }
}
