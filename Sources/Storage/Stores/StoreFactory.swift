// StoreFactory: picks the backend from configuration.
import Foundation

/// Opens the configured store: PostgreSQL for a `postgres://` or `postgresql://` URL, else the
/// SQLite file at `sqlitePath`.
public enum StoreFactory {
    /// The environment variable holding the PostgreSQL URL.
    public static let databaseURLEnvironmentKey = "PFC_DATABASE_URL"

    /// Opens a store; `databaseURL` nil or empty selects SQLite at `sqlitePath`.
    public static func open(databaseURL: String?, sqlitePath: String = SQLiteStore.defaultPath,
                            poolSize: Int = 8) throws -> any Store {
        guard let url = databaseURL?.trimmingCharacters(in: .whitespaces), !url.isEmpty else {
            return try SQLiteStore(path: sqlitePath)
        }
        guard url.hasPrefix("postgres://") || url.hasPrefix("postgresql://") else {
            throw StoreError.invalidArgument("database URL must start with postgres:// or postgresql://")
        }
        return try PostgresStore(configuration: .init(url: url, poolSize: poolSize))
    }

    /// Opens a store and, when `migrate` is true, applies pending migrations; either way refuses
    /// a database whose schema is newer than this binary.
    public static func openForServing(databaseURL: String?, sqlitePath: String = SQLiteStore.defaultPath,
                                      migrate: Bool) throws -> any Store {
        let store = try open(databaseURL: databaseURL, sqlitePath: sqlitePath)
        if migrate { try store.migrate() } else { _ = try store.migrationStatus() }
        return store
    }
}
