// Job checkpoints: only the lease holder writes one, a requeued job keeps it, and every way a job
// ends (complete, fail, cancel, reclaim giving up) removes it.
import Foundation
import Testing
import TestSupport
@testable import Storage

extension ConformanceTests {
    @Test(arguments: TestDatabase.backends)
    func checkpointsBelongToTheLeaseAndEndWithTheJob(backend: Backend) throws {
        try TestDatabase.withStore(backend) { store in
            let tenant = try TestDatabase.tenant(store)
            func running(maxAttempts: Int = 3) throws -> Job {
                let job = Job(tenantID: tenant.id, kind: "train", maxAttempts: maxAttempts)
                try store.enqueue(job)
                return try #require(try store.claimJob(owner: "w", leaseDuration: 30))
            }
            func save(_ job: Job, epoch: Int, owner: String = "w") throws {
                try store.saveCheckpoint(JobCheckpoint(jobID: job.id, attempt: job.attempts, epoch: epoch, batch: 0,
                                                       state: Data([UInt8(epoch), 0xFF, 0x00])), owner: owner)
            }

            // Saved and replaced by the lease holder only.
            let a = try running()
            try save(a, epoch: 2)
            try save(a, epoch: 3)
            let stored = try #require(try store.checkpoint(jobID: a.id))
            #expect(stored.epoch == 3 && stored.batch == 0 && stored.attempt == 1 && stored.state == Data([3, 0xFF, 0x00]))
            expectStoreError(\.isLeaseLost) { try save(a, epoch: 9, owner: "intruder") }
            #expect(try store.checkpoint(jobID: a.id)?.epoch == 3)
            // Completed: gone with the job's end, in the same transaction.
            try store.transaction { s in try s.completeJob(id: a.id, owner: "w", result: try JSONColumn(["model_version": 1])) }
            #expect(try store.checkpoint(jobID: a.id) == nil)
            expectStoreError(\.isLeaseLost) { try save(a, epoch: 4) }   // a finished job takes none

            // Failed.
            let b = try running()
            try save(b, epoch: 1)
            try store.failJob(id: b.id, owner: "w", error: "boom")
            #expect(try store.checkpoint(jobID: b.id) == nil)

            // Cancelled while running.
            let c = try running()
            try save(c, epoch: 1)
            _ = try store.cancelJob(id: c.id, tenantID: tenant.id)
            try store.finishCancelledJob(id: c.id, owner: "w")
            #expect(try store.checkpoint(jobID: c.id) == nil)

            // Lease expired: requeued with its checkpoint (the next worker resumes from it)…
            let d = try running()
            try save(d, epoch: 5)
            let later = Date().addingTimeInterval(60)
            #expect(try store.reclaimExpiredJobs(now: later).requeued == [d.id])
            #expect(try store.checkpoint(jobID: d.id)?.epoch == 5)
            // … and cancelled while queued: gone.
            #expect(try store.cancelJob(id: d.id, tenantID: tenant.id).state == .cancelled)
            #expect(try store.checkpoint(jobID: d.id) == nil)

            // Out of attempts when its lease expires: failed, gone.
            let e = try running(maxAttempts: 1)
            try save(e, epoch: 1)
            #expect(try store.reclaimExpiredJobs(now: later).failed == [e.id])
            #expect(try store.checkpoint(jobID: e.id) == nil)
            #expect(try store.checkpointCount() == 0)
        }
    }
}
