// JobChangeFeed: in-process news of committed job changes (issue 13). Job queries record each
// changed job in their session (`StoreSession.jobChanged`); after COMMIT the store hands the ids
// to every observer (the service's event hub). On PostgreSQL the same statement also NOTIFYs
// other replicas on channel `pfc_job_events` (see `PGListener`); a rolled-back change tells nobody.
import Synchronization

/// Observers of committed job changes in this process.
public final class JobChangeFeed: Sendable {
    /// The NOTIFY channel of job changes on PostgreSQL; payload `<job id>:<revision>`.
    public static let channel = "pfc_job_events"

    private let observers = Mutex<[@Sendable ([String]) -> Void]>([])

    public init() {}

    /// Calls `observer` with the ids of the jobs a transaction changed, after it committed, on the
    /// committing thread: it must not block.
    public func observe(_ observer: @escaping @Sendable ([String]) -> Void) {
        observers.withLock { $0.append(observer) }
    }

    func publish(_ jobIDs: [String]) {
        guard !jobIDs.isEmpty else { return }
        for observer in observers.withLock({ $0 }) { observer(jobIDs) }
    }
}

extension StoreSession {
    /// Job `id` changed in this transaction (its revision was bumped): NOTIFY on PostgreSQL
    /// (delivered at commit), and the store's `jobChanges` observers after commit.
    func jobChanged(_ id: String) throws {
        changedJobs.append(id)
        if dialect == .postgres {
            try connection.execute("""
                SELECT pg_notify(\(JobChangeFeed.channel), id || ':' || CAST(revision AS text)) FROM jobs WHERE id = \(id)
                """)
        }
    }
}
