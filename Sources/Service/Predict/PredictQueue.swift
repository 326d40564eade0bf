// PredictQueue: the bounded queue of prediction parts waiting for a compute thread, and how a
// compute thread forms its next batch from it (the dynamic batcher's policy; issue 15).
//
// Natural batching, with the delay as the most extra wait. A request is cut into parts of at most
// `maxRows` rows when it is submitted. A compute thread takes the oldest part, then every queued
// part with the same key (model, version, top, every_step) that still fits in `maxRows`:
// - when no other batch is computing (every compute thread is idle), the batch runs at once: a
//   lone client's request never waits for the delay;
// - while another batch computes, requests are arriving faster than one thread answers them, and
//   the batch waits for company: parts of its key submitted meanwhile join it directly, until it
//   is full, the oldest part has waited `delay` since it was submitted, or no other batch computes
//   any more (then a thread is idle and holding the batch back only adds latency).
// Requests that arrive while every thread computes gather in the queue by themselves and make the
// next batches. With `delay` 0 batching is off: every part runs on its own.
//
// The bound: at most `maxRequests` requests wait (a request counts until its last part is taken
// into a batch); one more is refused (503 with Retry-After), and nothing waits unboundedly.
import Dispatch
import Foundation
import HTTP

/// What requests must share to run in one FISTA batch.
struct PredictBatchKey: Hashable, Sendable {
    var modelID: String
    var version: Int
    var top: Int
    var everyStep: Bool
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

    private let lock = ConditionLock()
    // Guarded by `lock`.
    private var pending: [Entry] = []
    private var pendingHead = 0
    private var forming: [PredictBatchKey: Forming] = [:]
    private var partsLeft: [ObjectIdentifier: Int] = [:]
    private var closed = false
    private var held = false
    private var running = 0
    private var waited = 0

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
        // Wake the threads only when one has something to do: a part queued (an idle thread takes
        // it) or a forming batch filled (it runs now). A part joining a batch that still has room
        // wakes nobody (under load that is most requests).
        var wake = false
        for p in parts {
            let e = Entry(key: key, rows: p.rows, request: request, enqueuedAt: now, item: p.item)
            if let f = forming[key], f.rows + e.rows <= maxRows {
                f.entries.append(e)
                f.rows += e.rows
                took(e)
                if f.rows == maxRows { wake = true }
            } else {
                pending.append(e)
                wake = true
            }
        }
        if wake { lock.broadcast() }
    }

    /// Blocks until a batch is ready and returns its parts (in submission order within a request),
    /// or nil once the queue is closed and empty. The caller calls `batchDone` once it is computed.
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
            // Wait for company only while another batch computes (see the top of the file).
            if batch.rows < maxRows && forming[first.key] == nil && running > 0 {
                forming[first.key] = batch
                waited += 1
                let deadline = first.enqueuedAt &+ delayNanoseconds
                while batch.rows < maxRows && running > 0 && !closed {
                    let now = DispatchTime.now().uptimeNanoseconds
                    if now >= deadline { break }
                    lock.wait(seconds: Double(deadline - now) / 1e9)
                }
                forming[first.key] = nil
            }
        }
        compact()
        running += 1
        return batch.entries
    }

    /// A batch `nextBatch` returned has been computed (called before its answers go out, so a
    /// client's next request already finds this thread idle). Wakes forming batches: with no batch
    /// computing they stop waiting.
    func batchDone() {
        lock.lock()
        running -= 1
        lock.broadcast()
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

    /// Batches that waited for company (formed while another batch computed) so far.
    var waitedBatches: Int { lock.lock(); defer { lock.unlock() }; return waited }

    /// Batches forming now (waiting for company).
    var formingBatches: Int { lock.lock(); defer { lock.unlock() }; return forming.count }

    /// Requests waiting now (the number the bound applies to).
    var waitingRequests: Int { lock.lock(); defer { lock.unlock() }; return partsLeft.count }

    /// Test hook: while held, no batch starts (parts stay queued and the bound fills deterministically).
    func setHeld(_ on: Bool) {
        lock.lock()
        held = on
        lock.broadcast()
        lock.unlock()
    }

    /// Test hook: counts (or stops counting) one more batch as computing, as a busy compute thread
    /// would, so the next batch waits for company deterministically.
    func simulateRunningBatch(_ on: Bool) {
        lock.lock()
        running += on ? 1 : -1
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
