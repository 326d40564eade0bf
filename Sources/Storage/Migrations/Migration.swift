// Migration: one numbered SQL file of `migrations/<dialect>/`.
import Foundation

/// A numbered migration: `NNNN_name.sql` becomes version NNNN, `name`, and its SQL text.
struct Migration: Sendable {
    let version: Int
    let name: String
    let sql: String

    /// SHA-256 hex of the SQL, recorded in `schema_migrations` for auditing.
    var checksum: String { SHA256Hex.digest(Data(sql.utf8)) }
}

/// What a migration run found and did.
public struct MigrationReport: Sendable, Equatable {
    /// Versions already recorded in `schema_migrations` before this run.
    public var previouslyApplied: [Int]
    /// Versions applied by this run (empty for a re-run or a status check).
    public var applied: [Int]
    /// Versions this binary knows but the database has not got (after this run).
    public var pending: [Int]
    /// The highest version this binary knows.
    public var knownVersion: Int
}
