// TestDatabase: the stores tests run on. SQLite in a temp file; PostgreSQL in a fresh schema of
// PFC_TEST_DATABASE_URL (scripts/with-postgres.sh sets it). Without the URL the PostgreSQL cases are
// not generated locally; with CI=true they run and fail.
import Foundation
import Testing
@testable import Storage

/// Which database a test runs on.
package enum Backend: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite, postgres
    package var testDescription: String { rawValue }

    package static let environment = ProcessInfo.processInfo.environment
    package static let postgresURL: String? = environment["PFC_TEST_DATABASE_URL"].flatMap { $0.isEmpty ? nil : $0 }
    package static let isCI = environment["CI"] == "true"
    /// PostgreSQL runs when a URL is given, and always in CI (where a missing URL fails the test).
    package static let all: [Backend] = postgresURL != nil || isCI ? [.sqlite, .postgres] : [.sqlite]
}

/// Fresh stores for one test, and what the Storage suites measure about them.
package enum TestDatabase {
    package static let environment = Backend.environment
    package static let postgresURL = Backend.postgresURL
    package static let isCI = Backend.isCI
    /// The backends a conformance test runs against.
    package static let backends = Backend.all

    /// A fresh temp directory path (not created).
    package static func temporaryPath(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("pfc-storage-\(StoreID.make())").appendingPathComponent(name).path
    }

    /// Runs `body` with a fresh (by default migrated) store, then removes it. For PostgreSQL a
    /// missing URL records an issue (CI) or the case is not generated (local runs).
    package static func withStore(_ backend: Backend, migrate: Bool = true, poolSize: Int = 4,
                                  _ body: (any Store) throws -> Void) throws {
        switch backend {
        case .sqlite:
            let path = temporaryPath("pfc.sqlite")
            defer { try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path) }
            let store = try SQLiteStore(path: path)
            if migrate { try store.migrate() }
            try body(store)
        case .postgres:
            guard let url = postgresURL else {
                Issue.record("CI=true but PFC_TEST_DATABASE_URL is not set: run the tests through scripts/with-postgres.sh")
                return
            }
            let schema = "t_" + StoreID.make().replacingOccurrences(of: "-", with: "")
            try createSchema(schema, url: url)
            defer { dropSchema(schema, url: url) }
            let store = try PostgresStore(configuration: .init(url: url, poolSize: poolSize, schema: schema))
            if migrate { try store.migrate() }
            try body(store)
            store.close()
        }
    }

    /// Creates a PostgreSQL schema (if it does not exist) through a connection of its own.
    package static func createSchema(_ schema: String, url: String) throws {
        let admin = try PostgresStore(configuration: .init(url: url, poolSize: 1))
        defer { admin.close() }
        try admin.transaction { try $0.connection.executeScript("CREATE SCHEMA IF NOT EXISTS \(schema)") }
    }

    /// Drops a PostgreSQL schema and everything in it, ignoring failures.
    package static func dropSchema(_ schema: String, url: String) {
        guard let admin = try? PostgresStore(configuration: .init(url: url, poolSize: 1)) else { return }
        try? admin.transaction { try $0.connection.executeScript("DROP SCHEMA IF EXISTS \(schema) CASCADE") }
        admin.close()
    }

    /// A tenant inserted into `store`.
    package static func tenant(_ store: any Store, _ name: String = "acme") throws -> Tenant {
        let tenant = Tenant(name: name)
        try store.insert(tenant)
        return tenant
    }

    /// Resident set size of this process in bytes (Linux /proc), or 0 if unknown.
    package static func residentBytes() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let kilobytes = line.split(separator: " ").compactMap { Int($0) }.first ?? 0
            return kilobytes * 1024
        }
        return 0
    }
}

/// Where a service harness keeps its data, so a restarted harness finds the same database.
package struct HarnessLocation {
    package var backend: Backend
    package var sqlitePath: String
    package var schema: String
    package var dataDirectory: String

    package init(_ backend: Backend) {
        self.backend = backend
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pfc-svc-\(UUID().uuidString)").path
        dataDirectory = dir
        sqlitePath = dir + "/pfc.sqlite"
        schema = "svc_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
    }

    /// Opens (and migrates) the store; the same database each time.
    package func openStore() throws -> any Store {
        switch backend {
        case .sqlite:
            let s = try SQLiteStore(path: sqlitePath)
            try s.migrate()
            return s
        case .postgres:
            guard let url = Backend.postgresURL else { throw HarnessError("CI=true but PFC_TEST_DATABASE_URL is not set") }
            try TestDatabase.createSchema(schema, url: url)
            let s = try PostgresStore(configuration: .init(url: url, poolSize: 4, schema: schema))
            try s.migrate()
            return s
        }
    }

    /// Deletes the data directory and the PostgreSQL schema.
    package func destroy() {
        try? FileManager.default.removeItem(atPath: dataDirectory)
        if backend == .postgres, let url = Backend.postgresURL { TestDatabase.dropSchema(schema, url: url) }
    }
}

/// A harness could not set itself up.
package struct HarnessError: Error, CustomStringConvertible {
    package let description: String
    package init(_ d: String) { description = d }
}
