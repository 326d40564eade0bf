// Test stores: SQLite in a temp file, PostgreSQL in a fresh schema of PFC_TEST_DATABASE_URL.
import Foundation
import Testing
@testable import Storage

/// The backends a conformance test runs against.
enum Backend: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite, postgres
    var testDescription: String { rawValue }
}

enum TestDatabase {
    static let environment = ProcessInfo.processInfo.environment
    static let postgresURL: String? = environment["PFC_TEST_DATABASE_URL"].flatMap { $0.isEmpty ? nil : $0 }
    static let isCI = environment["CI"] == "true"
    /// PostgreSQL cases run when a URL is given, and in CI always (where a missing URL fails).
    static let backends: [Backend] = postgresURL != nil || isCI ? [.sqlite, .postgres] : [.sqlite]

    /// A fresh temp directory path (not created).
    static func temporaryPath(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("pfc-storage-\(StoreID.make())").appendingPathComponent(name).path
    }

    /// Runs `body` with a fresh (by default migrated) store, then removes it. For PostgreSQL a
    /// missing URL records an issue (CI) or the case is not generated (local runs).
    static func withStore(_ backend: Backend, migrate: Bool = true, poolSize: Int = 4,
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
            let admin = try PostgresStore(configuration: .init(url: url, poolSize: 1))
            try admin.transaction { try $0.connection.executeScript("CREATE SCHEMA \(schema)") }
            defer { try? admin.transaction { try $0.connection.executeScript("DROP SCHEMA \(schema) CASCADE") } }
            let store = try PostgresStore(configuration: .init(url: url, poolSize: poolSize, schema: schema))
            if migrate { try store.migrate() }
            try body(store)
            store.close()
        }
    }

    /// A tenant inserted into `store`.
    static func tenant(_ store: any Store, _ name: String = "acme") throws -> Tenant {
        let tenant = Tenant(name: name)
        try store.insert(tenant)
        return tenant
    }

    /// Resident set size of this process in bytes (Linux /proc), or 0 if unknown.
    static func residentBytes() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let kilobytes = line.split(separator: " ").compactMap { Int($0) }.first ?? 0
            return kilobytes * 1024
        }
        return 0
    }
}

/// Asserts that `body` throws a `StoreError` matching `matches`.
func expectStoreError(_ matches: (StoreError) -> Bool, sourceLocation: SourceLocation = #_sourceLocation,
                      _ body: () throws -> Void) {
    do {
        try body()
        Issue.record("expected a StoreError, nothing was thrown", sourceLocation: sourceLocation)
    } catch let error as StoreError {
        #expect(matches(error), "unexpected \(error)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected a StoreError, got \(error)", sourceLocation: sourceLocation)
    }
}

extension StoreError {
    var isConflict: Bool { if case .conflict = self { true } else { false } }
    var isNotFound: Bool { if case .notFound = self { true } else { false } }
    var isLeaseLost: Bool { if case .leaseLost = self { true } else { false } }
}
