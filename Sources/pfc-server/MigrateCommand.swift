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

    @OptionGroup var database: DatabaseOptions

    @Flag(name: .customLong("status"), help: "Only report applied and pending migrations; change nothing.")
    var statusOnly = false

    func run() throws {
        let path = database.sqlitePath
        do {
            let store = try database.openPlain()
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
