// Migrations: the embedded SQL equals migrations/, the schema matches it, re-runs are no-ops,
// and a database from the future is refused.
import Foundation
import Testing
@testable import Storage
import TestSupport

/// Repository root, from this file's path.
private let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

private func migrationFiles(_ dialect: String) throws -> [(name: String, text: String)] {
    let directory = repositoryRoot.appendingPathComponent("migrations/\(dialect)")
    return try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".sql") }.sorted().map {
        ($0, try String(contentsOf: directory.appendingPathComponent($0), encoding: .utf8))
    }
}

/// Tables and their columns as declared by `CREATE TABLE name (` … `);` in a migration.
private func declaredSchema(_ sql: String) -> [String: Set<String>] {
    var schema: [String: Set<String>] = [:]
    var current: String?
    for line in sql.split(separator: "\n").map({ $0.trimmingCharacters(in: .whitespaces) }) {
        if line.hasPrefix("DROP TABLE ") {                            // DROP TABLE t;
            schema[String(line.dropFirst("DROP TABLE ".count).prefix { $0 != ";" && $0 != " " })] = nil
        } else if line.hasPrefix("ALTER TABLE "), line.contains(" RENAME TO ") {  // ALTER TABLE a RENAME TO b;
            let words = line.split(separator: " ").map { String($0.prefix { $0 != ";" }) }
            schema[words[5]] = schema.removeValue(forKey: words[2])
        } else if line.hasPrefix("ALTER TABLE "), line.contains(" ADD COLUMN ") {
            let words = line.split(separator: " ").map(String.init)   // ALTER TABLE t ADD COLUMN c type…
            schema[words[2], default: []].insert(words[5])
        } else if line.hasPrefix("CREATE TABLE ") {
            current = String(line.dropFirst("CREATE TABLE ".count).prefix { $0 != " " && $0 != "(" })
            schema[current!] = []
        } else if line.hasPrefix(");") {
            current = nil
        } else if let table = current, let word = line.split(separator: " ").first,
                  !["PRIMARY", "UNIQUE", "CHECK", "FOREIGN", "CONSTRAINT"].contains(String(word)) {
            schema[table]!.insert(String(word))
        }
    }
    return schema
}

/// Tables and columns of the migrated database (information_schema / sqlite pragma).
private func actualSchema(_ store: any Store) throws -> [String: Set<String>] {
    try store.read { session in
        var schema: [String: Set<String>] = [:]
        switch session.dialect {
        case .postgres:
            for row in try session.connection.query("""
                SELECT table_name::text AS t, column_name::text AS c FROM information_schema.columns
                WHERE table_schema = current_schema() AND table_name <> 'schema_migrations'
                """) {
                schema[try row.string("t"), default: []].insert(try row.string("c"))
            }
        case .sqlite:
            let tables = try session.connection.query("""
                SELECT name FROM sqlite_master WHERE type = 'table' AND name <> 'schema_migrations' AND name NOT LIKE 'sqlite_%'
                """).map { try $0.string("name") }
            for table in tables {
                schema[table] = Set(try session.connection.query("SELECT name FROM pragma_table_info(\(table))").map { try $0.string("name") })
            }
        }
        return schema
    }
}

@Suite struct EmbeddedMigrationTests {
    /// The EmbedMigrations build plugin finds every `NNNN_name.sql` of a dialect by its file name alone.
    @Test(arguments: ["postgres", "sqlite"])
    func everyMigrationFileIsCompiledIn(dialect: String) throws {
        let embedded = dialect == "postgres" ? EmbeddedMigrations.postgres : EmbeddedMigrations.sqlite
        let files = try migrationFiles(dialect)
        #expect(files.count == embedded.count && !files.isEmpty, "Plugins/EmbedMigrations missed a file of migrations/\(dialect)")
        #expect(embedded.map(\.version) == embedded.map(\.version).sorted())
        for (file, migration) in zip(files, embedded) {
            let stem = file.name.replacingOccurrences(of: ".sql", with: "")
            #expect(stem == String(format: "%04d_%@", migration.version, migration.name))
            #expect(file.text == migration.sql + "\n", "\(file.name) is not embedded as it is")
        }
    }

    @Test func dialectsDeclareTheSameTablesAndColumns() throws {
        let postgres = try migrationFiles("postgres").map(\.text).joined(separator: "\n")
        let sqlite = try migrationFiles("sqlite").map(\.text).joined(separator: "\n")
        #expect(declaredSchema(postgres) == declaredSchema(sqlite))
        #expect(declaredSchema(postgres).count == 16)  // 0004 job_checkpoints, 0005 task_stream_batches, 0007 evaluations, 0010 optimizer_states
    }
}

extension ConformanceTests {
    @Test(arguments: TestDatabase.backends)
    func migratedSchemaMatchesMigrationFiles(backend: Backend) throws {
        try TestDatabase.withStore(backend) { store in
            let files = try migrationFiles(backend.rawValue).map(\.text).joined(separator: "\n")
            #expect(try actualSchema(store) == declaredSchema(files))
        }
    }

    @Test(arguments: TestDatabase.backends)
    func rerunningMigrateChangesNothing(backend: Backend) throws {
        try TestDatabase.withStore(backend, migrate: false) { store in
            let first = try store.migrate()
            #expect(first.applied == EmbeddedMigrations.postgres.map(\.version) && first.pending.isEmpty)
            let schema = try actualSchema(store)
            let second = try store.migrate()
            #expect(second.applied.isEmpty && second.pending.isEmpty && second.previouslyApplied == first.applied)
            #expect(try actualSchema(store) == schema)
            #expect(try store.migrationStatus().pending.isEmpty)
        }
    }

    @Test(arguments: TestDatabase.backends)
    func databaseWithNewerMigrationIsRefused(backend: Backend) throws {
        try TestDatabase.withStore(backend) { store in
            try store.transaction { session in
                try session.connection.execute("""
                    INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (9999, 'future', '', 'now')
                    """)
            }
            expectStoreError({ $0 == .incompatibleSchema(appliedVersion: 9999, knownVersion: EmbeddedMigrations.postgres.last!.version) }) { try store.migrate() }
            expectStoreError({ $0 == .incompatibleSchema(appliedVersion: 9999, knownVersion: EmbeddedMigrations.postgres.last!.version) }) { _ = try store.migrationStatus() }
        }
    }
}
