import Dispatch
import Foundation
import Testing
@testable import Service

/// The batch-forming policy of `PredictQueue` (issue 15), without HTTP: natural batching with the
/// delay as the most extra wait. A batch formed while every compute thread is idle runs at once; one
/// formed while another batch computes waits for company (until full, the delay, or no batch
/// computes any more). The delay here is an hour, so a batch that wrongly waited for it would never
/// come back within the tests' bounds: every assertion is on what was batched, none on timing.
@Suite struct PredictQueueTests {
    static let hour: UInt64 = 3_600_000_000_000

    static func key(top: Int = 5) -> PredictBatchKey { PredictBatchKey(modelID: "m", version: 1, top: top, everyStep: false) }

    /// A request object for the queue's per-request bound.
    final class Request {}

    /// Submits one part of `rows` rows carrying `label` as its own request.
    static func submit(_ q: PredictQueue<String>, _ label: String, rows: Int = 1, top: Int = 5, keep: inout [Request]) throws {
        let r = Request()
        keep.append(r)
        try q.submit(key: key(top: top), request: ObjectIdentifier(r), parts: [(rows, label)])
    }

    /// Calls `nextBatch` on a thread of its own; the box holds its labels once it returned.
    final class BatchBox: @unchecked Sendable {
        private let lock = NSLock()
        private var labels: [String]?
        let done = DispatchSemaphore(value: 0)
        func set(_ l: [String]) { lock.lock(); labels = l; lock.unlock(); done.signal() }
        var value: [String]? { lock.lock(); defer { lock.unlock() }; return labels }
    }

    static func nextBatchOnThread(_ q: PredictQueue<String>) -> BatchBox {
        let box = BatchBox()
        Thread { box.set(q.nextBatch()?.map(\.item) ?? []) }.start()
        return box
    }

    /// Polls (up to a minute, a bound on a hung queue, not a timing assertion) until `cond` holds.
    static func eventually(_ cond: () -> Bool) -> Bool {
        let end = Date().addingTimeInterval(60)
        while !cond() {
            if Date() > end { return false }
            Thread.sleep(forTimeInterval: 0.002)
        }
        return true
    }

    @Test func aLoneRequestRunsAtOnceWhenNoBatchComputes() throws {
        let q = PredictQueue<String>(maxRows: 64, delayNanoseconds: Self.hour, maxRequests: 16)
        var keep: [Request] = []
        for i in 0..<5 {
            try Self.submit(q, "r\(i)", keep: &keep)
            // Every compute thread is idle: the batch of one does not wait for company.
            let batch = try #require(q.nextBatch())
            #expect(batch.map(\.item) == ["r\(i)"])
            #expect(q.runningBatches == 1)
            q.batchDone()
        }
        #expect(q.waitedBatches == 0)
        #expect(q.runningBatches == 0 && q.waitingRequests == 0)
        // What is queued when a thread comes is taken together, still at once.
        for i in 0..<3 { try Self.submit(q, "q\(i)", keep: &keep) }
        try Self.submit(q, "other", top: 3, keep: &keep)
        let batch = try #require(q.nextBatch())
        #expect(batch.map(\.item) == ["q0", "q1", "q2"])
        q.batchDone()
        #expect(try #require(q.nextBatch()).map(\.item) == ["other"])
        q.batchDone()
        #expect(q.waitedBatches == 0)
    }

    @Test func whileAnotherBatchComputesABatchWaitsForCompanyUntilFull() throws {
        let q = PredictQueue<String>(maxRows: 3, delayNanoseconds: Self.hour, maxRequests: 16)
        var keep: [Request] = []
        q.simulateRunningBatch(true)
        try Self.submit(q, "a", keep: &keep)
        let box = Self.nextBatchOnThread(q)
        #expect(Self.eventually { q.formingBatches == 1 }, "the batch should wait for company while another computes")
        #expect(box.value == nil)
        // Another key does not join; the same key does, up to the batch's rows.
        try Self.submit(q, "other", top: 3, keep: &keep)
        try Self.submit(q, "b", keep: &keep)
        #expect(box.value == nil && q.formingBatches == 1, "two of three rows: still forming")
        try Self.submit(q, "c", keep: &keep)
        #expect(box.done.wait(timeout: .now() + 60) == .success)
        #expect(box.value == ["a", "b", "c"])
        #expect(q.waitedBatches == 1 && q.formingBatches == 0)
        #expect(q.waitingRequests == 1, "the other key's request still queues")
        q.batchDone()
        q.simulateRunningBatch(false)
        #expect(try #require(q.nextBatch()).map(\.item) == ["other"])
        q.batchDone()
    }

    @Test func aFormingBatchStopsWaitingOnceNoOtherBatchComputes() throws {
        let q = PredictQueue<String>(maxRows: 64, delayNanoseconds: Self.hour, maxRequests: 16)
        var keep: [Request] = []
        q.simulateRunningBatch(true)
        try Self.submit(q, "a", rows: 2, keep: &keep)
        let box = Self.nextBatchOnThread(q)
        #expect(Self.eventually { q.formingBatches == 1 })
        try Self.submit(q, "b", keep: &keep)
        #expect(box.value == nil)
        // The other batch is computed: a thread is idle, the forming batch runs with what it has.
        q.simulateRunningBatch(false)
        #expect(box.done.wait(timeout: .now() + 60) == .success)
        #expect(box.value == ["a", "b"])
        q.batchDone()
        #expect(q.waitedBatches == 1)
    }

    @Test func withoutDelayEveryPartRunsAlone() throws {
        let q = PredictQueue<String>(maxRows: 64, delayNanoseconds: 0, maxRequests: 16)
        var keep: [Request] = []
        q.simulateRunningBatch(true)
        for l in ["a", "b"] { try Self.submit(q, l, keep: &keep) }
        #expect(try #require(q.nextBatch()).map(\.item) == ["a"])
        #expect(try #require(q.nextBatch()).map(\.item) == ["b"])
        #expect(q.waitedBatches == 0)
        q.close()
        #expect(q.nextBatch() == nil)
    }
}
