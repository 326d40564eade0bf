// StoreError: every failure of the Storage module, with the database's message and the SQL.

/// An error from a `Store`. Cases carry the database's own message and, where one ran, the SQL.
public enum StoreError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The row does not exist, or belongs to another tenant, or a referenced row is missing.
    case notFound(String)
    /// A unique constraint was violated (PostgreSQL 23505, SQLite CONSTRAINT_UNIQUE/PRIMARYKEY),
    /// or an operation conflicts with the current state (e.g. deleting a dataset a job uses).
    case conflict(message: String, sql: String?)
    /// Serialization failure or deadlock (40001/40P01, SQLITE_BUSY) that outlived its retries.
    case serializationFailure(message: String, sql: String?)
    /// The statement ran longer than the statement timeout (57014).
    case timeout(message: String, sql: String?)
    /// Could not connect, or the connection broke and could not be re-established.
    case connectionFailed(message: String)
    /// No pooled connection became free within the acquire timeout.
    case poolExhausted(waitedSeconds: Double)
    /// Any other database error: SQLSTATE (PostgreSQL) or result code (SQLite), message, SQL.
    case database(code: String, message: String, sql: String?)
    /// A result column could not be decoded into the record's type.
    case decoding(column: String, message: String)
    /// The database has migrations newer than this binary knows: refuse to run against it.
    case incompatibleSchema(appliedVersion: Int, knownVersion: Int)
    /// A migration failed; nothing of it was applied.
    case migrationFailed(version: Int, name: String, message: String)
    /// The caller passed something the store cannot accept (bad URL, bad page size, …).
    case invalidArgument(String)
    /// The job is not running under this worker's lease any more (reclaimed, cancelled, done).
    case leaseLost(jobID: String)
    /// The job's cancel was requested before it could succeed: what it made is not stored.
    case jobCancelled(jobID: String)

    /// Whether the failure may pass by itself (the database was unreachable, busy or slow): a job
    /// that meets one goes back to the queue instead of failing.
    public var isTransient: Bool {
        switch self {
        case .connectionFailed, .poolExhausted, .timeout, .serializationFailure: return true
        default: return false
        }
    }

    public var description: String {
        switch self {
        case .notFound(let what): return "not found: \(what)"
        case .conflict(let message, let sql): return "conflict: \(message)" + Self.suffix(sql)
        case .serializationFailure(let message, let sql): return "serialization failure: \(message)" + Self.suffix(sql)
        case .timeout(let message, let sql): return "statement timeout: \(message)" + Self.suffix(sql)
        case .connectionFailed(let message): return "connection failed: \(message)"
        case .poolExhausted(let waited): return "no database connection free after \(waited) s"
        case .database(let code, let message, let sql): return "database error \(code): \(message)" + Self.suffix(sql)
        case .decoding(let column, let message): return "cannot decode column \(column): \(message)"
        case .incompatibleSchema(let applied, let known):
            return "database schema is at migration \(applied) but this server knows only up to \(known); upgrade the server"
        case .migrationFailed(let version, let name, let message): return "migration \(version) \(name) failed: \(message)"
        case .invalidArgument(let message): return "invalid argument: \(message)"
        case .leaseLost(let jobID): return "lease on job \(jobID) lost"
        case .jobCancelled(let jobID): return "job \(jobID) was cancelled"
        }
    }

    private static func suffix(_ sql: String?) -> String {
        guard let sql else { return "" }
        return " [SQL: \(sql.count > 300 ? String(sql.prefix(300)) + "…" : sql)]"
    }
}
