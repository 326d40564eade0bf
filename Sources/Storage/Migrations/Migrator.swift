// Migrator: applies `migrations/` in order, each in its own transaction, recorded in
// `schema_migrations`. Safe to run from several replicas at once (PostgreSQL advisory lock;
// SQLite's single writer).

/// Applies the embedded migrations of one dialect to a store.
struct Migrator {
    let store: any Store
    let migrations: [Migration]

    /// An arbitrary constant naming the migration lock for `pg_advisory_xact_lock`.
    private static let advisoryLockKey: Int64 = 0x5046_435F_4D49_4752  // "PFC_MIGR"

    private static let createTable = """
        CREATE TABLE IF NOT EXISTS schema_migrations (
            version bigint PRIMARY KEY,
            name text NOT NULL,
            checksum text NOT NULL,
            applied_at text NOT NULL
        )
        """

    var knownVersion: Int { migrations.map(\.version).max() ?? 0 }

    /// Applies every pending migration, refusing a database that is ahead of this binary.
    func migrate() throws -> MigrationReport {
        let before = try appliedVersions(creatingTable: true)
        try refuseNewer(before)
        var applied: [Int] = []
        for migration in migrations.sorted(by: { $0.version < $1.version }) where !before.contains(migration.version) {
            let didApply = try store.transaction { session -> Bool in
                let connection = session.connection
                if connection.dialect == .postgres {
                    _ = try connection.query("SELECT pg_advisory_xact_lock(\(Self.advisoryLockKey))::text AS locked")
                }
                // Another replica may have applied it while we waited for the lock.
                if try connection.queryOne("SELECT version FROM schema_migrations WHERE version = \(migration.version)") != nil {
                    return false
                }
                do {
                    try connection.executeScript(migration.sql)
                } catch {
                    throw StoreError.migrationFailed(version: migration.version, name: migration.name, message: "\(error)")
                }
                try connection.execute("""
                    INSERT INTO schema_migrations (version, name, checksum, applied_at)
                    VALUES (\(migration.version), \(migration.name), \(migration.checksum), \(ISO8601.string(StoreClock.now())))
                    """)
                return true
            }
            if didApply { applied.append(migration.version) }
        }
        let after = try appliedVersions(creatingTable: false)
        return report(previouslyApplied: before, applied: applied, now: after)
    }

    /// Reads the applied versions without changing anything.
    func status() throws -> MigrationReport {
        let applied = try appliedVersions(creatingTable: false)
        try refuseNewer(applied)
        return report(previouslyApplied: applied, applied: [], now: applied)
    }

    private func refuseNewer(_ applied: Set<Int>) throws {
        let known = Set(migrations.map(\.version))
        if let unknown = applied.subtracting(known).max(), unknown > knownVersion {
            throw StoreError.incompatibleSchema(appliedVersion: unknown, knownVersion: knownVersion)
        }
    }

    private func appliedVersions(creatingTable: Bool) throws -> Set<Int> {
        if creatingTable {
            try store.transaction { session in
                if session.dialect == .postgres {
                    _ = try session.connection.query("SELECT pg_advisory_xact_lock(\(Self.advisoryLockKey))::text AS locked")
                }
                try session.connection.executeScript(Self.createTable)
            }
        }
        return try store.read { session in
            let exists: Bool
            switch session.dialect {
            case .postgres:
                exists = try session.connection.queryOne("SELECT to_regclass('schema_migrations')::text AS name")?.optionalString("name") != nil
            case .sqlite:
                exists = try session.connection.queryOne(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'") != nil
            }
            guard exists else { return [] }
            return Set(try session.connection.query("SELECT version FROM schema_migrations").map { try $0.int("version") })
        }
    }

    private func report(previouslyApplied: Set<Int>, applied: [Int], now: Set<Int>) -> MigrationReport {
        MigrationReport(previouslyApplied: previouslyApplied.sorted(), applied: applied,
                        pending: migrations.map(\.version).filter { !now.contains($0) }.sorted(),
                        knownVersion: knownVersion)
    }
}
