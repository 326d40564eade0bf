// Job: one unit of background work in the queue, with its lease.
import Foundation

/// Where a job is in its life.
public enum JobState: String, Codable, Sendable, CaseIterable, SQLBindable {
    case queued, running, succeeded, failed, cancelled

    /// True for succeeded, failed and cancelled.
    public var isTerminal: Bool { self == .succeeded || self == .failed || self == .cancelled }
}

/// A queued or finished job. Its JSON columns (`params`, `progress`, `result`) are `JSONColumn`s: the
/// service stores and reads them as its typed values for the job's kind.
public struct Job: Codable, Sendable, Equatable {
    public var id: String
    public var tenantID: String
    /// The job kind's name (the service maps it to its typed kind; a claimed job of a kind it does
    /// not know fails).
    public var kind: String
    /// The kind's validated parameters.
    public var params: JSONColumn
    /// The dataset the job reads, if any (a dataset in use cannot be deleted).
    public var datasetID: String?
    public var modelID: String?
    public var state: JobState
    public var progress: JSONColumn?
    public var result: JSONColumn?
    public var error: String?
    /// Times a worker claimed (started) the job: 1 after a single run, 2 for a job whose lease
    /// expired and that another worker then ran again.
    public var attempts: Int
    public var maxAttempts: Int
    /// Set by `cancelJob` on a running job; the worker sees it at its next heartbeat.
    public var cancelRequested: Bool
    public var leaseOwner: String?
    public var leaseExpiresAt: Date?
    public var heartbeatAt: Date?
    public var createdAt: Date
    public var startedAt: Date?
    public var finishedAt: Date?
    /// Bumped by every change of the row (migration 0003): the job's event sequence number.
    public var revision: Int = 0

    /// A new queued job with a fresh id.
    public init(id: String = StoreID.make(), tenantID: String, kind: String, params: JSONColumn = .emptyObject,
                datasetID: String? = nil, modelID: String? = nil, maxAttempts: Int = 3, createdAt: Date = StoreClock.now()) {
        self.id = id
        self.tenantID = tenantID
        self.kind = kind
        self.params = params
        self.datasetID = datasetID
        self.modelID = modelID
        self.state = .queued
        self.attempts = 0
        self.maxAttempts = maxAttempts
        self.cancelRequested = false
        self.createdAt = createdAt
    }

    init(row: Row) throws {
        id = try row.string("id")
        tenantID = try row.string("tenant_id")
        kind = try row.string("kind")
        params = try row.json("params")
        datasetID = try row.optionalString("dataset_id")
        modelID = try row.optionalString("model_id")
        state = try row.decode("state", as: JobState.self)
        progress = try row.optionalJSON("progress")
        result = try row.optionalJSON("result")
        error = try row.optionalString("error")
        attempts = try row.int("attempts")
        maxAttempts = try row.int("max_attempts")
        cancelRequested = try row.bool("cancel_requested")
        leaseOwner = try row.optionalString("lease_owner")
        leaseExpiresAt = try row.optionalDate("lease_expires_at")
        heartbeatAt = try row.optionalDate("heartbeat_at")
        createdAt = try row.date("created_at")
        startedAt = try row.optionalDate("started_at")
        finishedAt = try row.optionalDate("finished_at")
        revision = try row.int("revision")
    }
}

/// What a worker learns from a heartbeat.
public enum JobControl: Sendable, Equatable {
    /// Keep going; the lease was extended.
    case proceed
    /// The job was cancelled: stop, then call `finishCancelledJob`.
    case cancelRequested
}

/// What `reclaimExpiredJobs` did.
public struct ReclaimReport: Sendable, Equatable {
    /// Jobs put back in the queue.
    public var requeued: [String]
    /// Jobs failed because they ran out of attempts.
    public var failed: [String]
}

extension Job {
    /// Bytes of the job's stored documents (parameters, progress, result): what a list page carries.
    public var storedBytes: Int { params.bytes.count + (progress?.bytes.count ?? 0) + (result?.bytes.count ?? 0) }
}
