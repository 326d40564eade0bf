// HandlerPool: a fixed set of threads running handlers, so blocking handlers (database calls,
// training set-up) never occupy connection queues or Swift's cooperative pool.

import Foundation

/// A bounded pool of threads draining a FIFO of work items.
final class HandlerPool: @unchecked Sendable {
    // Guarded by `lock`.
    private let lock = ConditionLock()
    private var queue: [@Sendable () -> Void] = []
    private var head = 0
    private var stopping = false
    private var idle = 0

    init(threads: Int, name: String) {
        for i in 0..<max(1, threads) {
            let thread = Thread { [self] in run() }
            thread.name = "\(name)-\(i)"
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    /// Queues `work` for the next free thread.
    func submit(_ work: @escaping @Sendable () -> Void) {
        lock.lock()
        queue.append(work)
        if idle > 0 { lock.signal() }
        lock.unlock()
    }

    /// Lets the threads exit once the queue is empty.
    func stop() {
        lock.withLock { stopping = true; lock.broadcast() }
    }

    private func run() {
        while true {
            lock.lock()
            while head == queue.count && !stopping {
                idle += 1
                lock.wait()
                idle -= 1
            }
            if head == queue.count {
                lock.unlock()
                return
            }
            let work = queue[head]
            head += 1
            if head == queue.count { queue.removeAll(keepingCapacity: true); head = 0 }
            lock.unlock()
            work()
        }
    }
}
