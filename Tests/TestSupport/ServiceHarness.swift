// ServiceHarness: a real pfc-server (PFCService behind an HTTPServer on a loopback port) over a real
// store (TestDatabase's SQLite file or PostgreSQL schema), with job workers, and an API client.
import Foundation
import HTTP
import Logging
import Testing
@testable import Service
@testable import Storage

/// A real server on a loopback port over a real store, with running job workers.
package final class ServiceHarness {
    package let location: HarnessLocation
    package let store: any Store
    package let service: PFCService
    package let server: HTTPServer
    package let client: TestClient
    package let key: String
    private let destroysLocation: Bool

    /// Starts a service on `location`'s database with quick heartbeats, polls and leases; `configure`
    /// changes the configuration after that, `configureHTTP` the server's.
    package init(_ location: HarnessLocation, key existingKey: String? = nil, workers: Int = 1, startWorkers: Bool = true,
                 destroysLocation: Bool = false,
                 configure: (inout ServiceConfiguration) -> Void = { _ in },
                 configureHTTP: (inout HTTPServer.Configuration) -> Void = { $0.maxBodyBytes = 8 << 20 }) throws {
        self.location = location
        self.destroysLocation = destroysLocation
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
        configureHTTP(&http)
        server = HTTPServer(configuration: http, router: service.makeRouter(), logger: logger)
        try server.start()
        if startWorkers { service.startWorkers() }
        key = try existingKey ?? APIKeys.create(in: store, tenantName: "tenant-\(UUID().uuidString.prefix(8))")
        client = TestClient(port: server.port, key: key)
    }

    /// Runs `body` with a fresh harness on `backend`, then stops it and deletes its database.
    package static func with(_ backend: Backend, configure: (inout ServiceConfiguration) -> Void = { _ in },
                             _ body: (ServiceHarness) throws -> Void) throws {
        let location = HarnessLocation(backend)
        defer { location.destroy() }
        let h = try ServiceHarness(location, configure: configure)
        defer { h.stop() }
        try body(h)
    }

    /// The id of the tenant of `key` (default: the harness's own).
    package func tenantID(_ key: String? = nil) throws -> String {
        guard let t = try store.tenant(forAPIKey: key ?? self.key) else { throw HarnessError("the key has no tenant") }
        return t.id
    }

    /// Stops the server and workers (the database stays, unless the harness was made to destroy it).
    package func stop() {
        service.stopWorkers(deadline: .seconds(5))
        server.shutdown(deadline: .seconds(2))
        _ = server.waitUntilStopped(timeout: .seconds(5))
        store.close()
        if destroysLocation { location.destroy() }
    }

    /// A client with a new key of a new tenant.
    package func otherTenantClient() throws -> TestClient {
        TestClient(port: server.port, key: try APIKeys.create(in: store, tenantName: "other-\(UUID().uuidString.prefix(8))"))
    }

    /// A client with a new key of a new tenant (the quota suites' name for `otherTenantClient`).
    package func newTenantClient() throws -> TestClient { try otherTenantClient() }

    /// The `/metrics` text.
    package func metrics() throws -> String { try client.request("GET", "/metrics", auth: false).text }

    /// Waits for a job to reach a terminal state; returns its JSON.
    package func waitForJob(_ id: String, timeout: TimeInterval = 300) throws -> [String: Any] {
        let end = Date().addingTimeInterval(timeout)
        while Date() < end {
            let r = try client.request("GET", "/v1/jobs/\(id)")
            let state = r.object["state"] as? String ?? ""
            if ["succeeded", "failed", "cancelled"].contains(state) { return r.object }
            Thread.sleep(forTimeInterval: 0.1)
        }
        throw HarnessError("job \(id) did not finish in \(timeout) s")
    }

    /// A file of `Tests/PFCTests/Fixtures`.
    package static func fixture(_ name: String) -> URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("PFCTests/Fixtures/\(name)")
    }

    /// The repository root.
    package static var repositoryRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }
}

/// The quota suites' harness: the `TenantLimits` a test sets, default heartbeats and leases, and
/// workers started only when asked (so queued jobs stay queued).
package typealias LimitsHarness = ServiceHarness

extension ServiceHarness {
    /// Runs `body` with a fresh harness with `limits`, then stops it and deletes its database.
    package static func with(_ backend: Backend, limits: TenantLimits, workers: Bool = false,
                             _ body: (ServiceHarness) throws -> Void) throws {
        let defaults = ServiceConfiguration()
        let h = try ServiceHarness(HarnessLocation(backend), startWorkers: workers, destroysLocation: true, configure: {
            $0.heartbeatSeconds = defaults.heartbeatSeconds
            $0.leaseSeconds = defaults.leaseSeconds
            $0.tenantLimits = limits
        }, configureHTTP: { _ in })
        defer { h.stop() }
        try body(h)
    }

    /// `TenantLimits` with every limit off except those `configure` sets.
    package static func limits(_ configure: (inout TenantLimits) -> Void) -> TenantLimits {
        var l = TenantLimits()
        l.requestsPerSecond = 0
        l.maxDatasetBytes = 0
        l.maxModels = 0
        l.maxActiveJobs = 0
        configure(&l)
        return l
    }
}
