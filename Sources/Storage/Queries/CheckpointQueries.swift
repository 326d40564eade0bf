// Job checkpoints: the last saved state of a running job, written only by the worker holding its
// lease and deleted when the job ends (complete, fail, cancel: see JobQueries).
import Foundation

/// The last checkpoint of a job.
public struct JobCheckpoint: Sendable, Equatable {
    public var jobID: String
    /// The attempt (claim) that saved it.
    public var attempt: Int
    /// Where the run stood: 1-based epoch and 0-based batch of the next batch to run.
    public var epoch: Int
    public var batch: Int
    /// The service's checkpoint document.
    public var state: Data
    public var createdAt: Date

    public init(jobID: String, attempt: Int, epoch: Int, batch: Int, state: Data, createdAt: Date = StoreClock.now()) {
        self.jobID = jobID
        self.attempt = attempt
        self.epoch = epoch
        self.batch = batch
        self.state = state
        self.createdAt = createdAt
    }

    init(row: Row) throws {
        self.init(jobID: try row.string("job_id"), attempt: try row.int("attempt"), epoch: try row.int("epoch"),
                  batch: try row.int("batch"), state: try row.data("state"), createdAt: try row.date("created_at"))
    }
}

extension StoreOperations {
    /// Saves (replaces) the job's checkpoint; throws `leaseLost` unless `owner` holds the running job.
    public func saveCheckpoint(_ checkpoint: JobCheckpoint, owner: String) throws {
        try withSession(writing: true) { session in
            // The job row stays locked until this commits (PostgreSQL; SQLite has one writer), so a
            // worker ending the job meanwhile waits, then deletes this checkpoint with the job's end.
            var lease: SQL = "SELECT id FROM jobs WHERE id = \(checkpoint.jobID) AND lease_owner = \(owner) AND state = 'running'"
            if session.dialect == .postgres { lease = lease + " FOR UPDATE" }
            guard try session.connection.queryOne(lease) != nil else { throw StoreError.leaseLost(jobID: checkpoint.jobID) }
            try session.connection.execute("""
                INSERT INTO job_checkpoints (job_id, attempt, epoch, batch, state, created_at)
                VALUES (\(checkpoint.jobID), \(checkpoint.attempt), \(checkpoint.epoch), \(checkpoint.batch), \(checkpoint.state),
                \(checkpoint.createdAt))
                ON CONFLICT (job_id) DO UPDATE SET attempt = excluded.attempt, epoch = excluded.epoch, batch = excluded.batch,
                state = excluded.state, created_at = excluded.created_at
                """)
        }
    }

    /// The job's last checkpoint, if any.
    public func checkpoint(jobID: String) throws -> JobCheckpoint? {
        try withSession(writing: false) { session in
            try session.connection.queryOne("""
                SELECT job_id, attempt, epoch, batch, state, created_at FROM job_checkpoints WHERE job_id = \(jobID)
                """).map(JobCheckpoint.init(row:))
        }
    }

    /// Deletes the checkpoints of jobs that ended (used by every query that ends a job).
    func deleteCheckpoints(jobIDs: [String]) throws {
        try withSession(writing: true) { session in
            for id in jobIDs { try session.connection.execute("DELETE FROM job_checkpoints WHERE job_id = \(id)") }
        }
    }

    /// Number of stored checkpoints (all jobs), for tests and metrics.
    public func checkpointCount() throws -> Int {
        try withSession(writing: false) { session in
            try session.connection.queryOne("SELECT COUNT(*) AS n FROM job_checkpoints").map { try $0.int("n") } ?? 0
        }
    }
}
