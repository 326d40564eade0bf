// The job queue: lifecycle, cancellation, lease expiry and reclaim, concurrent claimers.
import Foundation
import Synchronization
import Testing
@testable import Storage
import TestSupport

extension ConformanceTests {
    @Test(arguments: TestDatabase.backends)
    func jobLifecycleAndCancellation(backend: Backend) throws {
        try TestDatabase.withStore(backend) { store in
            let tenant = try TestDatabase.tenant(store)
            let first = Job(tenantID: tenant.id, kind: "train", params: try JSONColumn(["epochs": 3]))
            let second = Job(tenantID: tenant.id, kind: "analysis", createdAt: first.createdAt.addingTimeInterval(1))
            try store.enqueue(first)
            try store.enqueue(second)
            #expect(try store.claimJob(owner: "w", leaseDuration: 30, kinds: ["forget"]) == nil)
            let claimed = try #require(try store.claimJob(owner: "w", leaseDuration: 30))
            #expect(claimed.id == first.id && claimed.state == .running && claimed.leaseOwner == "w" && claimed.startedAt != nil)
            #expect(try store.heartbeat(jobID: first.id, owner: "w", progress: try JSONColumn(["epoch": 1]), leaseDuration: 30) == .proceed)
            #expect(try store.job(id: first.id, tenantID: tenant.id).progress?.decode([String: Int].self) == ["epoch": 1])
            expectStoreError(\.isLeaseLost) { _ = try store.heartbeat(jobID: first.id, owner: "intruder", leaseDuration: 30) }
            expectStoreError(\.isLeaseLost) { try store.completeJob(id: first.id, owner: "intruder", result: .emptyObject) }

            // Running: flagged, seen at the next heartbeat, then finished as cancelled.
            #expect(try store.cancelJob(id: first.id, tenantID: tenant.id).cancelRequested)
            #expect(try store.heartbeat(jobID: first.id, owner: "w", leaseDuration: 30) == .cancelRequested)
            try store.finishCancelledJob(id: first.id, owner: "w")
            #expect(try store.job(id: first.id, tenantID: tenant.id).state == .cancelled)
            // Queued: cancelled at once, never claimed.
            #expect(try store.cancelJob(id: second.id, tenantID: tenant.id).state == .cancelled)
            #expect(try store.claimJob(owner: "w", leaseDuration: 30) == nil)
            expectStoreError(\.isNotFound) { _ = try store.cancelJob(id: second.id, tenantID: "other") }

            let third = Job(tenantID: tenant.id, kind: "train")
            try store.enqueue(third)
            _ = try #require(try store.claimJob(owner: "w", leaseDuration: 30))
            try store.failJob(id: third.id, owner: "w", error: "diverged")
            let failed = try store.job(id: third.id, tenantID: tenant.id)
            #expect(failed.state == .failed && failed.error == "diverged")
            #expect(try store.jobs(tenantID: tenant.id, state: .cancelled).items.map(\.id) == [first.id, second.id])
        }
    }

    @Test(arguments: TestDatabase.backends)
    func expiredLeaseIsReclaimed(backend: Backend) throws {
        try TestDatabase.withStore(backend) { store in
            let tenant = try TestDatabase.tenant(store)
            let job = Job(tenantID: tenant.id, kind: "train", maxAttempts: 2)
            try store.enqueue(job)
            let start = StoreClock.now()
            _ = try #require(try store.claimJob(owner: "dead-replica", leaseDuration: 30, now: start))
            #expect(try store.reclaimExpiredJobs(now: start.addingTimeInterval(10)) == ReclaimReport(requeued: [], failed: []))
            #expect(try store.reclaimExpiredJobs(now: start.addingTimeInterval(31)) == ReclaimReport(requeued: [job.id], failed: []))
            let requeued = try store.job(id: job.id, tenantID: tenant.id)
            #expect(requeued.state == .queued && requeued.attempts == 1 && requeued.leaseOwner == nil)
            expectStoreError(\.isLeaseLost) { _ = try store.heartbeat(jobID: job.id, owner: "dead-replica", leaseDuration: 30) }

            let again = try #require(try store.claimJob(owner: "replica-2", leaseDuration: 30, now: start.addingTimeInterval(40)))
            #expect(again.id == job.id && again.leaseOwner == "replica-2" && again.attempts == 2)
            #expect(try store.reclaimExpiredJobs(now: start.addingTimeInterval(100)) == ReclaimReport(requeued: [], failed: [job.id]))
            let failed = try store.job(id: job.id, tenantID: tenant.id)
            #expect(failed.state == .failed && failed.attempts == 2 && failed.error?.contains("lease expired") == true)
        }
    }

    /// A server claims the kinds it runs; jobs of other kinds only once they were queued before a cutoff.
    @Test(arguments: TestDatabase.backends)
    func jobsOfOtherKindsAreClaimedOnlyOnceTheyWaited(backend: Backend) throws {
        try TestDatabase.withStore(backend) { store in
            let tenant = try TestDatabase.tenant(store)
            let start = StoreClock.now()
            let future = Job(tenantID: tenant.id, kind: "defragment", createdAt: start)
            let train = Job(tenantID: tenant.id, kind: "train", createdAt: start.addingTimeInterval(1))
            try store.enqueue(future)
            try store.enqueue(train)
            let known = ["train", "task"]
            #expect(try store.claimJob(owner: "w", leaseDuration: 30, kinds: known)?.id == train.id, "the older job of another kind is passed over")
            #expect(try store.claimJob(owner: "w", leaseDuration: 30, kinds: known) == nil)
            #expect(try store.claimJob(owner: "w", leaseDuration: 30, otherThan: known, queuedBefore: start) == nil, "not yet waited long enough")
            #expect(try store.claimJob(owner: "w", leaseDuration: 30, otherThan: known, queuedBefore: start.addingTimeInterval(0.5))?.id == future.id)
        }
    }

    /// On PostgreSQL leases run on the database's clock, not the replica's: one whose clock runs an
    /// hour behind claims and heartbeats a lease that another, an hour ahead, does not take while it
    /// lasts, and that expires when it should. (SQLite serves one process, with one clock.)
    @Test func leasesRunOnTheDatabasesClock() throws {
        try TestDatabase.withStore(.postgres) { store in
            let tenant = try TestDatabase.tenant(store)
            let job = Job(tenantID: tenant.id, kind: "train")
            try store.enqueue(job)
            let none = ReclaimReport(requeued: [], failed: [])
            let claimed = try StoreClock.$skewForTesting.withValue(-3600) {
                try #require(try store.claimJob(owner: "slow-clock", leaseDuration: 3))
            }
            #expect(try store.reclaimExpiredJobs() == none, "an honest replica leaves the lease alone")
            #expect(try StoreClock.$skewForTesting.withValue(3600) { try store.reclaimExpiredJobs() } == none, "so does one an hour ahead")
            let expires = try #require(claimed.leaseExpiresAt)
            #expect(abs(expires.timeIntervalSince(Date()) - 3) < 2, "\(expires)")
            #expect(try StoreClock.$skewForTesting.withValue(-3600) {
                try store.heartbeat(jobID: job.id, owner: "slow-clock", leaseDuration: 3)
            } == .proceed)
            #expect(abs((try store.job(id: job.id, tenantID: tenant.id).leaseExpiresAt ?? .distantPast).timeIntervalSince(Date()) - 3) < 2)
            Thread.sleep(forTimeInterval: 3.5)
            #expect(try StoreClock.$skewForTesting.withValue(-3600) { try store.reclaimExpiredJobs() } == ReclaimReport(requeued: [job.id], failed: []),
                    "expired on the database's clock, whatever the replica's says")
        }
    }

    /// A graceful shutdown releases a running job: queued at once, its checkpoint kept, the claim not
    /// counted (three restarts used to fail a healthy job); only the lease holder may release it.
    @Test(arguments: TestDatabase.backends)
    func aReleasedJobIsQueuedAgainWithoutUsingAnAttempt(backend: Backend) throws {
        try TestDatabase.withStore(backend) { store in
            let tenant = try TestDatabase.tenant(store)
            let job = Job(tenantID: tenant.id, kind: "train", maxAttempts: 2)
            try store.enqueue(job)
            for restart in 1...3 {
                let claimed = try #require(try store.claimJob(owner: "w\(restart)", leaseDuration: 30))
                #expect(claimed.id == job.id && claimed.attempts == 1, "restart \(restart)")
                try store.saveCheckpoint(JobCheckpoint(jobID: job.id, attempt: claimed.attempts, epoch: restart, batch: 0,
                                                       state: Data([UInt8(restart)])), owner: "w\(restart)")
                expectStoreError(\.isLeaseLost) { try store.releaseJob(id: job.id, owner: "intruder") }
                try store.releaseJob(id: job.id, owner: "w\(restart)")
                let released = try store.job(id: job.id, tenantID: tenant.id)
                #expect(released.state == .queued && released.attempts == 0 && released.leaseOwner == nil)
                #expect(try store.checkpoint(jobID: job.id)?.epoch == restart)
            }
            expectStoreError(\.isLeaseLost) { try store.releaseJob(id: job.id, owner: "w3") }  // queued: nobody holds it
        }
    }

    /// A job stopped by an unavailable database goes back to the queue with its checkpoint; each such
    /// run counts, and once it has run `max_attempts` times it fails with the error, checkpoint gone.
    @Test(arguments: TestDatabase.backends)
    func aRequeuedJobFailsOnceItUsedItsAttempts(backend: Backend) throws {
        try TestDatabase.withStore(backend) { store in
            let tenant = try TestDatabase.tenant(store)
            let job = Job(tenantID: tenant.id, kind: "train", maxAttempts: 2)
            try store.enqueue(job)
            var claimed = try #require(try store.claimJob(owner: "w", leaseDuration: 30))
            try store.saveCheckpoint(JobCheckpoint(jobID: job.id, attempt: 1, epoch: 4, batch: 0, state: Data([4])), owner: "w")
            #expect(try store.requeueJob(id: job.id, owner: "w", error: "database gone") == .queued)
            var now = try store.job(id: job.id, tenantID: tenant.id)
            #expect(now.state == .queued && now.attempts == 1 && now.error == nil && now.finishedAt == nil)
            #expect(try store.checkpoint(jobID: job.id)?.epoch == 4)
            claimed = try #require(try store.claimJob(owner: "w", leaseDuration: 30))
            #expect(claimed.attempts == 2)
            #expect(try store.requeueJob(id: job.id, owner: "w", error: "database gone") == .failed)
            now = try store.job(id: job.id, tenantID: tenant.id)
            #expect(now.state == .failed && now.error == "database gone" && now.finishedAt != nil)
            #expect(try store.checkpoint(jobID: job.id) == nil)
            expectStoreError(\.isLeaseLost) { _ = try store.requeueJob(id: job.id, owner: "w", error: "x") }
        }
    }

    /// Version-writing jobs of one model are claimed one at a time, oldest first, whatever number of
    /// workers asks; other kinds, and other models' jobs, are not held back by them.
    @Test(arguments: TestDatabase.backends)
    func aModelsVersionWritingJobsAreClaimedOneAtATimeInOrder(backend: Backend) throws {
        try TestDatabase.withStore(backend) { store in
            let tenant = try TestDatabase.tenant(store)
            let a = Model(tenantID: tenant.id, name: "a", kind: "pfc", architecture: "{}")
            let b = Model(tenantID: tenant.id, name: "b", kind: "pfc", architecture: "{}")
            try store.insert(a)
            try store.insert(b)
            let serial = ["train", "task", "forget"]
            let start = StoreClock.now()
            func job(_ kind: String, _ model: Model, _ second: Double) -> Job {
                Job(tenantID: tenant.id, kind: kind, modelID: model.id, createdAt: start.addingTimeInterval(second))
            }
            let task1 = job("task", a, 0), task2 = job("task", a, 1), analysis = job("analysis", a, 2), other = job("train", b, 3)
            for j in [task1, task2, analysis, other] { try store.enqueue(j) }
            func claim(_ owner: String) throws -> String? { try store.claimJob(owner: owner, leaseDuration: 30, oneAtATimePerModel: serial)?.id }
            #expect(try claim("w1") == task1.id)
            // task 2 waits for task 1; the analysis and model b's job do not.
            #expect(try claim("w2") == analysis.id)
            #expect(try claim("w3") == other.id)
            #expect(try claim("w4") == nil)
            try store.completeJob(id: task1.id, owner: "w1", result: .emptyObject)
            #expect(try claim("w4") == task2.id)
            // Without the rule (a caller that runs kinds side by side) nothing waits.
            let task3 = job("task", a, 4)
            try store.enqueue(task3)
            #expect(try store.claimJob(owner: "w5", leaseDuration: 30)?.id == task3.id)
        }
    }

    /// A job whose cancel was asked for while it ran is not queued again by a shutdown's release or
    /// a database outage's requeue: it ends cancelled, its checkpoint dropped.
    @Test(arguments: TestDatabase.backends)
    func aCancelAskedForIsKeptByReleaseAndRequeue(backend: Backend) throws {
        try TestDatabase.withStore(backend) { store in
            let tenant = try TestDatabase.tenant(store)
            for release in [true, false] {
                let job = Job(tenantID: tenant.id, kind: "train")
                try store.enqueue(job)
                _ = try #require(try store.claimJob(owner: "w", leaseDuration: 30))
                try store.saveCheckpoint(JobCheckpoint(jobID: job.id, attempt: 1, epoch: 1, batch: 0, state: Data([1])), owner: "w")
                #expect(try store.cancelJob(id: job.id, tenantID: tenant.id).cancelRequested)
                if release { #expect(try store.releaseJob(id: job.id, owner: "w") == .cancelled) } else { #expect(try store.requeueJob(id: job.id, owner: "w", error: "gone") == .cancelled) }
                let now = try store.job(id: job.id, tenantID: tenant.id)
                #expect(now.state == .cancelled && now.finishedAt != nil && now.error == nil && now.leaseOwner == nil, "release \(release)")
                #expect(try store.checkpoint(jobID: job.id) == nil)
                #expect(try store.claimJob(owner: "w", leaseDuration: 30) == nil)
            }
        }
    }

    /// A cancel requested after the worker last looked stops the job at its commit: it cannot
    /// succeed (`jobCancelled`, and the transaction's other rows roll back with it); it can still be
    /// finished as cancelled.
    @Test(arguments: TestDatabase.backends)
    func aCancelledJobCannotSucceed(backend: Backend) throws {
        try TestDatabase.withStore(backend) { store in
            let tenant = try TestDatabase.tenant(store)
            let job = Job(tenantID: tenant.id, kind: "train")
            try store.enqueue(job)
            _ = try #require(try store.claimJob(owner: "w", leaseDuration: 30))
            #expect(try store.cancelJob(id: job.id, tenantID: tenant.id).cancelRequested)
            let other = Tenant(name: "side-effect")
            expectStoreError(\.isJobCancelled) {
                try store.transaction { s in
                    try s.insert(other)
                    try s.completeJob(id: job.id, owner: "w", result: .emptyObject)
                }
            }
            #expect(throws: StoreError.self) { _ = try store.tenant(id: other.id) }
            #expect(try store.job(id: job.id, tenantID: tenant.id).state == .running)
            expectStoreError(\.isLeaseLost) { try store.completeJob(id: job.id, owner: "intruder", result: .emptyObject) }
            try store.finishCancelledJob(id: job.id, owner: "w")
            #expect(try store.job(id: job.id, tenantID: tenant.id).state == .cancelled)
        }
    }

    /// Issue 12 finding 14: `attempts` counts runs, so a job reclaimed and run again reads 2 (it read 1).
    @Test(arguments: TestDatabase.backends)
    func attemptsCountEveryRunOfAJob(backend: Backend) throws {
        try TestDatabase.withStore(backend) { store in
            let tenant = try TestDatabase.tenant(store)
            let once = Job(tenantID: tenant.id, kind: "train")
            try store.enqueue(once)
            #expect(try store.job(id: once.id, tenantID: tenant.id).attempts == 0)
            #expect(try #require(try store.claimJob(owner: "w", leaseDuration: 30)).attempts == 1)
            try store.completeJob(id: once.id, owner: "w", result: .emptyObject)
            #expect(try store.job(id: once.id, tenantID: tenant.id).attempts == 1)

            let twice = Job(tenantID: tenant.id, kind: "train")
            try store.enqueue(twice)
            let start = StoreClock.now()
            _ = try #require(try store.claimJob(owner: "dies", leaseDuration: 1, now: start))
            #expect(try store.reclaimExpiredJobs(now: start.addingTimeInterval(2)).requeued == [twice.id])
            let second = try #require(try store.claimJob(owner: "lives", leaseDuration: 30, now: start.addingTimeInterval(3)))
            #expect(second.id == twice.id && second.attempts == 2)
            try store.completeJob(id: twice.id, owner: "lives", result: .emptyObject)
            let done = try store.job(id: twice.id, tenantID: tenant.id)
            #expect(done.state == .succeeded && done.attempts == 2)
        }
    }

    @Test(arguments: TestDatabase.backends)
    func concurrentClaimersClaimEachJobExactlyOnce(backend: Backend) throws {
        let (workers, jobCount) = backend == .postgres ? (8, 1000) : (4, 200)
        try TestDatabase.withStore(backend, poolSize: workers + 1) { store in
            let tenant = try TestDatabase.tenant(store)
            let jobs = (0..<jobCount).map { Job(tenantID: tenant.id, kind: "train", params: try! JSONColumn(["n": $0])) }
            try store.transaction { tx in for job in jobs { try tx.enqueue(job) } }

            let claims = Mutex<[String: [String]]>([:])
            let failures = Mutex<[String]>([])
            let group = DispatchGroup()
            for worker in 0..<workers {
                group.enter()
                let thread = Thread {
                    defer { group.leave() }
                    do {
                        while let job = try store.claimJob(owner: "worker-\(worker)", leaseDuration: 60) {
                            claims.withLock { $0[job.id, default: []].append("worker-\(worker)") }
                        }
                    } catch {
                        failures.withLock { $0.append("\(error)") }
                    }
                }
                thread.start()
            }
            group.wait()
            #expect(failures.withLock { $0 } == [])
            let claimed = claims.withLock { $0 }
            #expect(claimed.count == jobCount)
            #expect(claimed.values.allSatisfy { $0.count == 1 })
            #expect(Set(claimed.keys) == Set(jobs.map(\.id)))
            #expect(Set(claimed.values.map { $0[0] }).count > 1, "work should spread over several claimers")
            #expect(try store.jobs(tenantID: tenant.id, state: .running, page: PageRequest(limit: 1000)).items.count == jobCount)
        }
    }
}
