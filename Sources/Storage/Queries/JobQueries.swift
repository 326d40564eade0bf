// Jobs and the queue: enqueue, claim with a lease, heartbeat, complete/fail/cancel, reclaim.
// PostgreSQL claims with `FOR UPDATE SKIP LOCKED`; SQLite's write transactions are
// `BEGIN IMMEDIATE` on the single writer, so claims are serialized there.
import Foundation

private let jobColumns: SQL = """
    id, tenant_id, kind, params, dataset_id, model_id, state, progress, result, error, attempts, max_attempts, \
    cancel_requested, lease_owner, lease_expires_at, heartbeat_at, created_at, started_at, finished_at, revision
    """

extension StoreOperations {
    /// Puts a job in the queue (state queued).
    public func enqueue(_ job: Job) throws {
        try withSession(writing: true) { session in
            try session.connection.execute("""
                INSERT INTO jobs (id, tenant_id, kind, params, dataset_id, model_id, state, attempts, max_attempts,
                cancel_requested, created_at)
                VALUES (\(job.id), \(job.tenantID), \(job.kind), \(job.params), \(job.datasetID), \(job.modelID),
                \(JobState.queued), 0, \(job.maxAttempts), \(false), \(job.createdAt))
                """)
        }
    }

    /// The tenant's job, or `notFound`.
    public func job(id: String, tenantID: String) throws -> Job {
        try withSession(writing: false) { session in
            try session.one("SELECT \(sql: jobColumns) FROM jobs WHERE id = \(id) AND tenant_id = \(tenantID)",
                            notFound: "job \(id)", Job.init(row:))
        }
    }

    /// The tenant's jobs (optionally in one state, of one model, of one kind), oldest first.
    public func jobs(tenantID: String, state: JobState? = nil, modelID: String? = nil, kind: String? = nil,
                     page: PageRequest = PageRequest()) throws -> Page<Job> {
        try withSession(writing: false) { session in
            var statement: SQL = "SELECT \(sql: jobColumns) FROM jobs WHERE tenant_id = \(tenantID)"
            if let state { statement = statement + " AND state = \(state)" }
            if let modelID { statement = statement + " AND model_id = \(modelID)" }
            if let kind { statement = statement + " AND kind = \(kind)" }
            return try session.page(statement + " ORDER BY created_at, id", page, Job.init(row:))
        }
    }

    /// The model's jobs of `kinds` that are queued or running (the partial index `jobs_model_active`
    /// answers it): how many, and the kind of the one queued last. The work a newly queued job of
    /// one of those kinds waits behind.
    public func activeJobs(modelID: String, tenantID: String, kinds: [String]) throws -> (count: Int, lastKind: String?) {
        guard !kinds.isEmpty else { return (0, nil) }
        return try withSession(writing: false) { session in
            let active: SQL = "model_id = \(modelID) AND tenant_id = \(tenantID) AND state IN ('queued', 'running') AND kind IN (" + sqlList(kinds) + ")"
            let count = try session.connection.queryOne("SELECT COUNT(*) AS n FROM jobs WHERE \(sql: active)").map { try $0.int("n") } ?? 0
            guard count > 0 else { return (0, nil) }
            let last = try session.connection.queryOne("SELECT kind FROM jobs WHERE \(sql: active) ORDER BY created_at DESC, id DESC LIMIT 1")
            return (count, try last.map { try $0.string("kind") })
        }
    }

    /// Claims the oldest queued job (of `kinds`, if given) for `owner`: state running, lease
    /// until `now + leaseDuration`, `attempts` + 1 (a job reclaimed and run again reads 2).
    /// Nil when the queue is empty. Each job is claimed once per time it is queued. A job of
    /// `oneAtATimePerModel` kinds waits while another of those kinds on its model runs or was queued
    /// before it: tasks queued one after another run in order, each on the version the last wrote,
    /// however many workers and replicas there are. `otherThan` with `queuedBefore` claims instead
    /// only jobs of other kinds that were queued before that time (jobs no replica has taken).
    public func claimJob(owner: String, leaseDuration: TimeInterval, kinds: [String]? = nil,
                         otherThan excluded: [String] = [], queuedBefore: Date? = nil,
                         oneAtATimePerModel serial: [String] = [], now: Date? = nil) throws -> Job? {
        do {
            return try claimJobOnce(owner: owner, leaseDuration: leaseDuration, kinds: kinds, excluded: excluded, queuedBefore: queuedBefore,
                                    serial: serial, now: now)
        } catch ClaimRace.anotherRuns {
            return nil  // rolled back: the job stays queued behind the one that runs
        }
    }

    private func claimJobOnce(owner: String, leaseDuration: TimeInterval, kinds: [String]?, excluded: [String], queuedBefore: Date?,
                              serial: [String], now given: Date?) throws -> Job? {
        try withSession(writing: true) { session in
            let now = try session.leaseClock(given)
            var candidates: SQL = "SELECT j.id FROM jobs j WHERE j.state = 'queued'"
            if let kinds {
                guard !kinds.isEmpty else { return nil }
                candidates = candidates + " AND j.kind IN (" + sqlList(kinds) + ")"
            }
            if !excluded.isEmpty { candidates = candidates + " AND j.kind NOT IN (" + sqlList(excluded) + ")" }
            if let queuedBefore { candidates = candidates + " AND j.created_at < \(queuedBefore)" }
            if !serial.isEmpty {
                candidates = candidates + " AND (j.model_id IS NULL OR j.kind NOT IN (" + sqlList(serial) + ") OR NOT EXISTS ("
                    + "SELECT 1 FROM jobs o WHERE o.model_id = j.model_id AND o.id <> j.id AND o.kind IN (" + sqlList(serial) + ")"
                    + " AND o.state IN ('queued', 'running')"  // the partial index's own term, so SQLite uses it too
                    + " AND (o.state = 'running' OR (o.state = 'queued' AND (o.created_at < j.created_at"
                    + " OR (o.created_at = j.created_at AND o.id < j.id))))))"
            }
            candidates = candidates + " ORDER BY j.created_at, j.id LIMIT 1"
            if session.dialect == .postgres { candidates = candidates + " FOR UPDATE OF j SKIP LOCKED" }
            let expires = now.addingTimeInterval(leaseDuration)
            let claimed = try session.connection.queryOne("""
                UPDATE jobs SET state = 'running', lease_owner = \(owner), lease_expires_at = \(expires),
                heartbeat_at = \(now), started_at = COALESCE(started_at, \(now)), attempts = attempts + 1, revision = revision + 1
                WHERE state = 'queued' AND id = (\(sql: candidates))
                RETURNING \(sql: jobColumns)
                """).map(Job.init(row:))
            // PostgreSQL: two replicas may each claim a job of one model at once (the other's claim not
            // yet committed, or queued out of created_at order). Under a per-model lock, a fresh
            // statement sees every committed claim; the later one rolls back. (SQLite writers are serial.)
            if let claimed, session.dialect == .postgres, let model = claimed.modelID, serial.contains(claimed.kind) {
                _ = try session.connection.query("SELECT pg_advisory_xact_lock(hashtext(\("pfc-job-model:" + model)))::text AS locked")
                if try session.connection.queryOne("""
                    SELECT id FROM jobs WHERE model_id = \(model) AND id <> \(claimed.id) AND state = 'running' AND kind IN (\(sql: sqlList(serial)))
                    LIMIT 1
                    """) != nil { throw ClaimRace.anotherRuns }
            }
            if let claimed { try session.jobChanged(claimed.id) }
            return claimed
        }
    }

    /// Extends the lease and records progress JSON (when given). Tells the worker whether the
    /// job was cancelled; throws `leaseLost` when the job is no longer running under `owner`.
    public func heartbeat(jobID: String, owner: String, progress: JSONColumn? = nil, leaseDuration: TimeInterval,
                          now given: Date? = nil) throws -> JobControl {
        try withSession(writing: true) { session in
            let now = try session.leaseClock(given)
            guard let row = try session.connection.queryOne("""
                UPDATE jobs SET lease_expires_at = \(now.addingTimeInterval(leaseDuration)), heartbeat_at = \(now),
                progress = COALESCE(\(progress), progress), revision = revision + 1
                WHERE id = \(jobID) AND lease_owner = \(owner) AND state = 'running'
                RETURNING cancel_requested
                """) else { throw StoreError.leaseLost(jobID: jobID) }
            try session.jobChanged(jobID)
            return try row.bool("cancel_requested") ? .cancelRequested : .proceed
        }
    }

    /// Marks a running job succeeded with its result JSON (use inside the transaction that
    /// stores what the job made). Throws `leaseLost` if `owner` no longer holds it.
    public func completeJob(id: String, owner: String, result: JSONColumn, now: Date? = nil) throws {
        try finishJob(id: id, owner: owner, state: .succeeded, result: result, error: nil, now: now)
    }

    /// Marks a running job failed with an error message.
    public func failJob(id: String, owner: String, error: String, now: Date? = nil) throws {
        try finishJob(id: id, owner: owner, state: .failed, result: nil, error: error, now: now)
    }

    /// Marks a running job cancelled: the worker's answer to `JobControl.cancelRequested`.
    public func finishCancelledJob(id: String, owner: String, now: Date? = nil) throws {
        try finishJob(id: id, owner: owner, state: .cancelled, result: nil, error: nil, now: now)
    }

    private func finishJob(id: String, owner: String, state: JobState, result: JSONColumn?, error: String?, now given: Date?) throws {
        try withSession(writing: true) { session in
            let now = try session.leaseClock(given)
            // A job cancelled after its worker last looked does not succeed: its result is not stored.
            let uncancelled: SQL = state == .succeeded ? " AND cancel_requested = \(false)" : ""
            if try session.connection.execute("""
                UPDATE jobs SET state = \(state), result = \(result), error = \(error), finished_at = \(now),
                lease_owner = NULL, lease_expires_at = NULL, revision = revision + 1
                WHERE id = \(id) AND lease_owner = \(owner) AND state = 'running'\(sql: uncancelled)
                """) == 0 {
                if state == .succeeded, try session.connection.queryOne(
                    "SELECT id FROM jobs WHERE id = \(id) AND lease_owner = \(owner) AND state = 'running' AND cancel_requested = \(true)") != nil {
                    throw StoreError.jobCancelled(jobID: id)
                }
                throw StoreError.leaseLost(jobID: id)
            }
            try session.deleteCheckpoints(jobIDs: [id])  // a job's checkpoint ends with it
            try session.jobChanged(id)
        }
    }

    /// Returns a running job to the queue at once, its checkpoint kept, without counting this claim
    /// as an attempt: a graceful shutdown, so that restarts never use up a job's attempts. A job
    /// whose cancel was asked for meanwhile ends cancelled instead (its checkpoint dropped).
    /// Returns the state it is left in (queued or cancelled).
    @discardableResult
    public func releaseJob(id: String, owner: String, now given: Date? = nil) throws -> JobState {
        try withSession(writing: true) { session in
            let now = try session.leaseClock(given)
            let cancelled: SQL = "cancel_requested = \(true)"
            guard let row = try session.connection.queryOne("""
                UPDATE jobs SET state = CASE WHEN \(sql: cancelled) THEN 'cancelled' ELSE 'queued' END,
                finished_at = CASE WHEN \(sql: cancelled) THEN \(now) ELSE NULL END, lease_owner = NULL, lease_expires_at = NULL,
                attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, revision = revision + 1
                WHERE id = \(id) AND lease_owner = \(owner) AND state = 'running'
                RETURNING state
                """) else { throw StoreError.leaseLost(jobID: id) }
            let state: JobState = try row.string("state") == JobState.queued.rawValue ? .queued : .cancelled
            if state != .queued { try session.deleteCheckpoints(jobIDs: [id]) }
            try session.jobChanged(id)
            return state
        }
    }

    /// Returns a running job to the queue after a failure that may pass (the database was
    /// unavailable), its checkpoint kept; once it has run `max_attempts` times it fails with `error`
    /// instead, and one whose cancel was asked for ends cancelled. Returns the state it is left in
    /// (queued, failed or cancelled).
    @discardableResult
    public func requeueJob(id: String, owner: String, error: String, now given: Date? = nil) throws -> JobState {
        try withSession(writing: true) { session in
            let now = try session.leaseClock(given)
            let cancelled: SQL = "cancel_requested = \(true)"
            guard let row = try session.connection.queryOne("""
                UPDATE jobs SET state = CASE WHEN \(sql: cancelled) THEN 'cancelled' WHEN attempts >= max_attempts THEN 'failed' ELSE 'queued' END,
                error = CASE WHEN \(sql: cancelled) THEN NULL WHEN attempts >= max_attempts THEN \(error) ELSE NULL END,
                finished_at = CASE WHEN \(sql: cancelled) OR attempts >= max_attempts THEN \(now) ELSE NULL END,
                lease_owner = NULL, lease_expires_at = NULL, revision = revision + 1
                WHERE id = \(id) AND lease_owner = \(owner) AND state = 'running'
                RETURNING state
                """) else { throw StoreError.leaseLost(jobID: id) }
            guard let state = JobState(rawValue: try row.string("state")) else { throw StoreError.invalidArgument("unknown job state") }
            if state != .queued { try session.deleteCheckpoints(jobIDs: [id]) }
            try session.jobChanged(id)
            return state
        }
    }

    /// Cancels a job: a queued one at once; a running one is flagged (its worker sees it at the
    /// next heartbeat); a finished one is left as it is. Returns the job as it now stands.
    public func cancelJob(id: String, tenantID: String, now given: Date? = nil) throws -> Job {
        try withSession(writing: true) { session in
            let now = try session.leaseClock(given)
            try session.connection.execute("""
                UPDATE jobs SET state = 'cancelled', finished_at = \(now), revision = revision + 1
                WHERE id = \(id) AND tenant_id = \(tenantID) AND state = 'queued'
                """)
            try session.connection.execute("""
                UPDATE jobs SET cancel_requested = \(true), revision = revision + 1
                WHERE id = \(id) AND tenant_id = \(tenantID) AND state = 'running' AND cancel_requested = \(false)
                """)
            try session.jobChanged(id)
            let job = try session.job(id: id, tenantID: tenantID)
            // A queued job may hold the checkpoint of an earlier attempt.
            if job.state == .cancelled { try session.deleteCheckpoints(jobIDs: [id]) }
            return job
        }
    }

    /// Returns running jobs whose lease expired before `now` to the queue, or fails them once
    /// they have run `maxAttempts` times; cancel-requested ones become cancelled. (`attempts`
    /// counts claims, so it is not changed here.)
    public func reclaimExpiredJobs(now given: Date? = nil) throws -> ReclaimReport {
        try withSession(writing: true) { session in
            let now = try session.leaseClock(given)
            let expired: SQL = "state = 'running' AND lease_expires_at < \(now)"
            let cleared: SQL = "lease_owner = NULL, lease_expires_at = NULL, revision = revision + 1"
            let cancelled = try session.connection.query("""
                UPDATE jobs SET state = 'cancelled', finished_at = \(now), \(sql: cleared)
                WHERE \(sql: expired) AND cancel_requested = \(true) RETURNING id
                """).map { try $0.string("id") }
            let failed = try session.connection.query("""
                UPDATE jobs SET state = 'failed', finished_at = \(now), \(sql: cleared),
                error = 'lease expired ' || CAST(attempts AS text) || ' time(s); giving up'
                WHERE \(sql: expired) AND attempts >= max_attempts RETURNING id
                """).map { try $0.string("id") }
            try session.deleteCheckpoints(jobIDs: cancelled + failed)  // requeued jobs keep theirs: they resume from it
            let requeued = try session.connection.query("""
                UPDATE jobs SET state = 'queued', \(sql: cleared) WHERE \(sql: expired) RETURNING id
                """).map { try $0.string("id") }
            for id in cancelled + failed + requeued { try session.jobChanged(id) }
            return ReclaimReport(requeued: requeued.sorted(), failed: failed.sorted())
        }
    }
}

extension StoreSession {
    /// The time leases and a job's start and finish are written and compared in: `given` when the
    /// caller names one (tests); else, on PostgreSQL, the database server's clock, one clock for
    /// every replica, so a replica whose clock runs ahead cannot take a live job's lease, nor one
    /// running behind keep a dead one; else (SQLite: one process) this process's clock.
    func leaseClock(_ given: Date?) throws -> Date {
        if let given { return given }
        guard dialect == .postgres else { return StoreClock.now() }
        guard let row = try connection.queryOne("SELECT clock_timestamp() AS now") else { return StoreClock.now() }
        return dateFromMicroseconds(microsecondsSince1970(try row.date("now")))
    }
}

/// `values` as bound parameters separated by commas, for `IN (…)`.
private func sqlList(_ values: [String]) -> SQL {
    var list: SQL = ""
    for (index, value) in values.enumerated() { list = list + (index == 0 ? "\(value)" : ", \(value)") }
    return list
}

/// A claim that lost the race for its model to another replica's (rolled back, not an error).
private enum ClaimRace: Error { case anotherRuns }
