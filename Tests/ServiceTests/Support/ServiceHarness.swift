import Foundation
import HTTP
import Logging
import Testing
@testable import Service
@testable import Storage

/// Which database a service test runs on.
enum Backend: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite, postgres
    var testDescription: String { rawValue }

    static let environment = ProcessInfo.processInfo.environment
    static let postgresURL: String? = environment["PFC_TEST_DATABASE_URL"].flatMap { $0.isEmpty ? nil : $0 }
    static let isCI = environment["CI"] == "true"
    /// PostgreSQL runs when a URL is given, and always in CI (where a missing URL fails the test).
    static let all: [Backend] = postgresURL != nil || isCI ? [.sqlite, .postgres] : [.sqlite]
}

/// Where a harness keeps its data, so a restarted harness finds the same database.
struct HarnessLocation {
    var backend: Backend
    var sqlitePath: String
    var schema: String
    var dataDirectory: String

    init(_ backend: Backend) {
        self.backend = backend
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pfc-svc-\(UUID().uuidString)").path
        dataDirectory = dir
        sqlitePath = dir + "/pfc.sqlite"
        schema = "svc_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
    }

    func openStore() throws -> any Store {
        switch backend {
        case .sqlite:
            let s = try SQLiteStore(path: sqlitePath)
            try s.migrate()
            return s
        case .postgres:
            guard let url = Backend.postgresURL else { throw HarnessError("CI=true but PFC_TEST_DATABASE_URL is not set") }
            let admin = try PostgresStore(configuration: .init(url: url, poolSize: 1))
            try admin.transaction { try $0.connection.executeScript("CREATE SCHEMA IF NOT EXISTS \(schema)") }
            admin.close()
            let s = try PostgresStore(configuration: .init(url: url, poolSize: 4, schema: schema))
            try s.migrate()
            return s
        }
    }

    func destroy() {
        try? FileManager.default.removeItem(atPath: dataDirectory)
        if backend == .postgres, let url = Backend.postgresURL, let admin = try? PostgresStore(configuration: .init(url: url, poolSize: 1)) {
            try? admin.transaction { try $0.connection.executeScript("DROP SCHEMA IF EXISTS \(schema) CASCADE") }
            admin.close()
        }
    }
}

struct HarnessError: Error, CustomStringConvertible { let description: String; init(_ d: String) { description = d } }

/// A real server on a loopback port over a real store, with running job workers.
final class ServiceHarness {
    let location: HarnessLocation
    let store: any Store
    let service: PFCService
    let server: HTTPServer
    let client: TestClient
    let key: String

    init(_ location: HarnessLocation, key existingKey: String? = nil, workers: Int = 1,
         configure: (inout ServiceConfiguration) -> Void = { _ in }) throws {
        self.location = location
        store = try location.openStore()
        var config = ServiceConfiguration()
        config.dataDirectory = location.dataDirectory
        config.heartbeatSeconds = 0.2
        config.pollSeconds = 0.1
        config.leaseSeconds = 3
        config.workers = workers
        configure(&config)
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        service = PFCService(store: store, configuration: config, logger: logger)
        var http = HTTPServer.Configuration(host: "127.0.0.1", port: 0)
        http.maxBodyBytes = 8 << 20
        server = HTTPServer(configuration: http, router: service.makeRouter(), logger: logger)
        try server.start()
        service.startWorkers()
        key = try existingKey ?? APIKeys.create(in: store, tenantName: "tenant-\(UUID().uuidString.prefix(8))")
        client = TestClient(port: server.port, key: key)
    }

    /// Runs `body` with a fresh harness on `backend`, then stops it and deletes its database.
    static func with(_ backend: Backend, configure: (inout ServiceConfiguration) -> Void = { _ in },
                     _ body: (ServiceHarness) throws -> Void) throws {
        let location = HarnessLocation(backend)
        defer { location.destroy() }
        let h = try ServiceHarness(location, configure: configure)
        defer { h.stop() }
        try body(h)
    }

    /// The id of the harness's own tenant.
    func tenantID() throws -> String {
        guard let t = try store.tenant(forAPIKey: key) else { throw HarnessError("the harness key has no tenant") }
        return t.id
    }

    /// Stops the server and workers (the database stays).
    func stop() {
        service.stopWorkers(deadline: .seconds(5))
        server.shutdown(deadline: .seconds(2))
        _ = server.waitUntilStopped(timeout: .seconds(5))
        store.close()
    }

    /// A client of another tenant.
    func otherTenantClient() throws -> TestClient {
        TestClient(port: server.port, key: try APIKeys.create(in: store, tenantName: "other-\(UUID().uuidString.prefix(8))"))
    }

    /// Waits for a job to reach a terminal state; returns its JSON.
    func waitForJob(_ id: String, timeout: TimeInterval = 300) throws -> [String: Any] {
        let end = Date().addingTimeInterval(timeout)
        while Date() < end {
            let r = try client.request("GET", "/v1/jobs/\(id)")
            let state = r.object["state"] as? String ?? ""
            if ["succeeded", "failed", "cancelled"].contains(state) { return r.object }
            Thread.sleep(forTimeInterval: 0.1)
        }
        throw HarnessError("job \(id) did not finish in \(timeout) s")
    }

    static func fixture(_ name: String) -> URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("PFCTests/Fixtures/\(name)")
    }

    static var repositoryRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }
}
