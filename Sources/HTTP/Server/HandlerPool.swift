// HandlerPool: a fixed set of threads running handlers, so blocking handlers (database calls,
// training set-up) never occupy connection queues or Swift's cooperative pool.

import Foundation
import Synchronization

/// A bounded pool of threads draining a FIFO of work items.
final class HandlerPool: @unchecked Sendable {
    // Guarded by `lock`.
    private let lock = ConditionLock()
    private var queue: [(work: @Sendable () -> Void, queuedAt: UInt64)] = []
    private var head = 0
    private var stopping = false
    private var idle = 0
    /// Work items queued and not yet taken (read without the lock by spinning threads).
    private let pending = Atomic<Int>(0)
    /// Threads spinning for work before they sleep.
    private let spinning = Atomic<Int>(0)
    /// Work items queued or running.
    private let outstanding = Atomic<Int>(0)

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
        outstanding.add(1, ordering: .relaxed)
        queue.append((work, DispatchTime.now().uptimeNanoseconds))
        pending.add(1, ordering: .releasing)
        // A spinning thread will pick it up without a wake-up (a futex call and a context switch).
        if idle > 0 && spinning.load(ordering: .acquiring) == 0 { lock.signal() }
        lock.unlock()
    }

    /// Lets the threads exit once the queue is empty.
    func stop() {
        lock.withLock { stopping = true; lock.broadcast() }
    }

    /// Under load the next request usually arrives within microseconds: wait for it awake (one
    /// thread at a time) instead of sleeping and being woken.
    private func spinBriefly() {
        guard spinning.compareExchange(expected: 0, desired: 1, ordering: .acquiring).exchanged else { return }
        for _ in 0..<200 {
            if pending.load(ordering: .acquiring) > 0 { break }
            sched_yield()
        }
        spinning.store(0, ordering: .releasing)
    }

    private func run() {
        while true {
            if pending.load(ordering: .acquiring) == 0 { spinBriefly() }
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
            let work = queue[head].work
            head += 1
            pending.subtract(1, ordering: .relaxed)
            if head == queue.count {
                queue.removeAll(keepingCapacity: true); head = 0
            } else if idle > 0 {
                // `submit` skips the wake-up while a thread spins, counting on it to take the item; when
                // two arrive together that thread takes one, and the other must not wait for it to
                // finish (a streaming upload may take minutes) while idle threads sleep: pass it on.
                lock.signal()
            }
            lock.unlock()
            work()
            outstanding.subtract(1, ordering: .releasing)
        }
    }

    /// How long the oldest queued item has waited for a thread (zero when none waits): the pool is
    /// saturated when this grows.
    var queueDelay: Duration {
        let since = lock.withLock { head < queue.count ? queue[head].queuedAt : nil }
        guard let since else { return .zero }
        let now = DispatchTime.now().uptimeNanoseconds
        return .nanoseconds(Int64(clamping: now &- since))
    }

    /// Work items queued or running.
    var outstandingCount: Int { outstanding.load(ordering: .relaxed) }

    /// Waits until no work is queued or running, or `timeout` passes; true when idle.
    func waitUntilIdle(timeout: Duration) -> Bool {
        let end = ContinuousClock.now + timeout
        while outstanding.load(ordering: .acquiring) > 0 {
            if ContinuousClock.now >= end { return false }
            usleep(5_000)
        }
        return true
    }
}
