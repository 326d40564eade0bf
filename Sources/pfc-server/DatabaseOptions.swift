import ArgumentParser
import Foundation
import Storage

/// Where the data lives: `--database-url` (or `PFC_DATABASE_URL`) selects PostgreSQL; without it
/// the SQLite file `<data dir>/pfc.sqlite` is used.
struct DatabaseOptions: ParsableArguments {
    @Option(name: .customLong("database-url"), help: "PostgreSQL URL (postgres://…); default $PFC_DATABASE_URL, else SQLite.")
    var databaseURL: String?

    @Option(name: .customLong("data-dir"), help: "Directory of the SQLite file and the bootstrap key; default $PFC_DATA_DIR or ./data.")
    var dataDirectory: String?

    @Option(name: .customLong("sqlite-path"), help: "SQLite file when no PostgreSQL URL is given; default <data dir>/pfc.sqlite.")
    var sqlitePathOverride: String?

    /// The PostgreSQL URL in force, if any.
    var resolvedURL: String? {
        let url = databaseURL ?? ProcessInfo.processInfo.environment[StoreFactory.databaseURLEnvironmentKey]
        return (url?.isEmpty ?? true) ? nil : url
    }

    /// The data directory in force.
    var resolvedDataDirectory: String {
        dataDirectory ?? ProcessInfo.processInfo.environment["PFC_DATA_DIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "./data"
    }

    /// The SQLite file used when no URL is given.
    var sqlitePath: String { sqlitePathOverride ?? (resolvedDataDirectory as NSString).appendingPathComponent("pfc.sqlite") }

    /// Opens the store without touching its schema.
    func openPlain() throws -> any Store { try StoreFactory.open(databaseURL: resolvedURL, sqlitePath: sqlitePath) }

    /// Opens the store; migrates it first when `migrate`, otherwise refuses an out-of-date schema.
    func open(migrate: Bool) throws -> any Store {
        return try StoreFactory.openForServing(databaseURL: resolvedURL, sqlitePath: sqlitePath, migrate: migrate)
    }
}
