// PredictQueue: the bounded queue of prediction parts waiting for a compute thread, and how a
// compute thread forms its next batch from it (the dynamic batcher's policy; issue 15).
//
// A request is cut into parts of at most `maxRows` rows when it is submitted. A compute thread
// takes the oldest part, then every queued part with the same key (model, version, top,
// every_step) that still fits in `maxRows`; while the batch has room, the oldest part has waited
// less than `delay` and another batch is computing (so requests arrive concurrently), parts of that
// key submitted meanwhile join it directly. Then the batch runs. A request of a lone client thus
// never waits for the delay. With `delay` 0 batching is off: every part runs on its own.
//
// The bound: at most `maxRequests` requests wait (a request counts until its last part is taken
// into a batch); one more is refused (503 with Retry-After), and nothing waits unboundedly.
import Dispatch
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What requests must share to run in one FISTA batch.
struct PredictBatchKey: Hashable, Sendable {
    var modelID: String
    var version: Int
    var top: Int
    var everyStep: Bool
}

/// A pthread mutex with one condition variable (monotonic clock).
final class PredictConditionLock: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let cond = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    init() {
        pthread_mutex_init(mutex, nil)
        var attr = pthread_condattr_t()
        pthread_condattr_init(&attr)
        #if !canImport(Darwin)
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        #endif
        pthread_cond_init(cond, &attr)
        pthread_condattr_destroy(&attr)
    }

    deinit {
        pthread_cond_destroy(cond)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        cond.deallocate()
    }

    func lock() { pthread_mutex_lock(mutex) }
    func unlock() { pthread_mutex_unlock(mutex) }
    func wait() { pthread_cond_wait(cond, mutex) }

    /// Waits for a signal or until the monotonic `deadline` (DispatchTime nanoseconds); the lock must be held.
    func wait(untilUptime deadline: UInt64) {
        let now = DispatchTime.now().uptimeNanoseconds
        guard deadline > now else { return }
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        let total = UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec) + (deadline - now)
        var until = timespec()
        until.tv_sec = Int(total / 1_000_000_000)
        until.tv_nsec = Int(total % 1_000_000_000)
        pthread_cond_timedwait(cond, mutex, &until)
    }

    func broadcast() { pthread_cond_broadcast(cond) }
}

/// The queue. `Item` is one part of a request; `Owner` identifies its request (for the bound).
final class PredictQueue<Item: Sendable>: @unchecked Sendable {
    /// One queued part.
    struct Entry {
        var key: PredictBatchKey
        var rows: Int
        var request: ObjectIdentifier
        var enqueuedAt: UInt64
        var item: Item
    }

    /// A batch being formed by a compute thread: parts of its key join it while it has room.
    private final class Forming {
        var entries: [Entry]
        var rows: Int
        init(_ first: Entry) { entries = [first]; rows = first.rows }
    }

    let maxRows: Int
    let delayNanoseconds: UInt64
    let maxRequests: Int

    private let lock = PredictConditionLock()
    // Guarded by `lock`.
    private var pending: [Entry] = []
    private var pendingHead = 0
    private var forming: [PredictBatchKey: Forming] = [:]
    private var partsLeft: [ObjectIdentifier: Int] = [:]
    private var closed = false
    private var held = false
    private var running = 0

    init(maxRows: Int, delayNanoseconds: UInt64, maxRequests: Int) {
        self.maxRows = max(1, maxRows)
        self.delayNanoseconds = delayNanoseconds
        self.maxRequests = max(1, maxRequests)
    }

    /// Why `submit` refused a request.
    enum Refusal: Error { case full, closed }

    /// Queues the parts of one request (all or none).
    func submit(key: PredictBatchKey, request: ObjectIdentifier, parts: [(rows: Int, item: Item)]) throws(Refusal) {
        let now = DispatchTime.now().uptimeNanoseconds
        lock.lock()
        defer { lock.unlock() }
        if closed { throw .closed }
        if partsLeft.count >= maxRequests { throw .full }
        partsLeft[request] = parts.count
        for p in parts {
            let e = Entry(key: key, rows: p.rows, request: request, enqueuedAt: now, item: p.item)
            if let f = forming[key], f.rows + e.rows <= maxRows {
                f.entries.append(e)
                f.rows += e.rows
                took(e)
            } else {
                pending.append(e)
            }
        }
        lock.broadcast()
    }

    /// Blocks until a batch is ready and returns its parts (in submission order within a request),
    /// or nil once the queue is closed and empty.
    func nextBatch() -> [Entry]? {
        lock.lock()
        defer { lock.unlock() }
        while true {
            while (pendingHead == pending.count || held) && !closed { lock.wait() }
            if pendingHead == pending.count { return nil }  // closed and drained
            if !held || closed { break }
        }
        let first = pending[pendingHead]
        pendingHead += 1
        took(first)
        let batch = Forming(first)
        if delayNanoseconds > 0 {
            takeMatching(into: batch)
            // Wait for company only while another batch computes: then requests are arriving
            // concurrently and the wait fills this batch. A lone client's request runs at once.
            if batch.rows < maxRows && forming[first.key] == nil && running > 0 {
                forming[first.key] = batch
                let deadline = first.enqueuedAt &+ delayNanoseconds
                while batch.rows < maxRows && !closed && DispatchTime.now().uptimeNanoseconds < deadline {
                    lock.wait(untilUptime: deadline)
                }
                forming[first.key] = nil
            }
        }
        compact()
        running += 1
        return batch.entries
    }

    /// A batch `nextBatch` returned has been run.
    func batchDone() {
        lock.lock()
        running -= 1
        lock.unlock()
    }

    /// Moves queued parts of `batch`'s key that fit into it (oldest first).
    private func takeMatching(into batch: Forming) {
        guard batch.rows < maxRows else { return }
        let key = batch.entries[0].key
        var i = pendingHead
        var kept: [Entry] = []
        var changed = false
        while i < pending.count {
            let e = pending[i]
            if e.key == key && batch.rows + e.rows <= maxRows {
                batch.entries.append(e)
                batch.rows += e.rows
                took(e)
                changed = true
            } else {
                kept.append(e)
            }
            i += 1
            if batch.rows == maxRows { break }
        }
        guard changed else { return }
        kept.append(contentsOf: pending[i...])
        pending = kept
        pendingHead = 0
    }

    /// A part left the queue: its request stops counting once its last part did.
    private func took(_ e: Entry) {
        guard let left = partsLeft[e.request] else { return }
        if left <= 1 { partsLeft[e.request] = nil } else { partsLeft[e.request] = left - 1 }
    }

    private func compact() {
        if pendingHead > 64 && pendingHead * 2 > pending.count {
            pending.removeFirst(pendingHead)
            pendingHead = 0
        }
    }

    /// Batches running now.
    var runningBatches: Int { lock.lock(); defer { lock.unlock() }; return running }

    /// Requests waiting now (the number the bound applies to).
    var waitingRequests: Int { lock.lock(); defer { lock.unlock() }; return partsLeft.count }

    /// Test hook: while held, no batch starts (parts stay queued and the bound fills deterministically).
    func setHeld(_ on: Bool) {
        lock.lock()
        held = on
        lock.broadcast()
        lock.unlock()
    }

    /// Refuses new parts; the compute threads run what is queued, then `nextBatch` returns nil.
    func close() {
        lock.lock()
        closed = true
        lock.broadcast()
        lock.unlock()
    }
}
