import ArgumentParser
import Foundation
import Storage

/// `pfc-server migrate`: applies the SQL migrations compiled into this binary (issue 4).
/// PostgreSQL when `--database-url` or `PFC_DATABASE_URL` is a postgres:// URL, else SQLite.
struct MigrateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Apply database migrations.",
        discussion: """
            Applies every pending migration, each in its own transaction, and records it in \
            schema_migrations. Re-running changes nothing. Refuses a database whose migrations are \
            newer than this binary knows.
            """)

    @Option(name: .customLong("database-url"), help: "PostgreSQL URL (postgres://…); default $PFC_DATABASE_URL, else SQLite.")
    var databaseURL: String?

    @Option(name: .customLong("sqlite-path"), help: "SQLite file when no PostgreSQL URL is given; default $PFC_DATA_DIR/pfc.sqlite or ./data/pfc.sqlite.")
    var sqlitePath: String?

    @Flag(name: .customLong("status"), help: "Only report applied and pending migrations; change nothing.")
    var statusOnly = false

    func run() throws {
        let environment = ProcessInfo.processInfo.environment
        let url = databaseURL ?? environment[StoreFactory.databaseURLEnvironmentKey]
        let path = sqlitePath
            ?? environment["PFC_DATA_DIR"].flatMap { $0.isEmpty ? nil : ($0 as NSString).appendingPathComponent("pfc.sqlite") }
            ?? SQLiteStore.defaultPath
        do {
            let store = try StoreFactory.open(databaseURL: url, sqlitePath: path)
            defer { store.close() }
            let target = store.backend == .sqlite ? "sqlite \(path)" : "postgres"
            let report = statusOnly ? try store.migrationStatus() : try store.migrate()
            print("\(target): applied \(report.previouslyApplied.count + report.applied.count) of \(report.knownVersion) migration(s)"
                  + (report.applied.isEmpty ? "" : "; this run applied \(report.applied.map(String.init).joined(separator: ", "))")
                  + (report.pending.isEmpty ? "" : "; pending \(report.pending.map(String.init).joined(separator: ", "))"))
        } catch let error as StoreError {
            throw MigrationFailure(message: error.description)
        }
    }
}

/// A database error reported without the usage text (exit status 1).
private struct MigrationFailure: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}
