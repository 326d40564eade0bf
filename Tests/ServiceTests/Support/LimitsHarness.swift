import Foundation
import HTTP
import Logging
@testable import Service
@testable import Storage

/// A real server on a loopback port, like `ServiceHarness`, with the `TenantLimits` a test sets
/// and workers started only when asked (so queued jobs stay queued).
final class LimitsHarness {
    let location: HarnessLocation
    let store: any Store
    let service: PFCService
    let server: HTTPServer
    let client: TestClient
    let key: String

    init(_ backend: Backend, limits: TenantLimits, workers: Bool) throws {
        location = HarnessLocation(backend)
        store = try location.openStore()
        var config = ServiceConfiguration()
        config.dataDirectory = location.dataDirectory
        config.pollSeconds = 0.1
        config.tenantLimits = limits
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        service = PFCService(store: store, configuration: config, logger: logger)
        server = HTTPServer(configuration: HTTPServer.Configuration(host: "127.0.0.1", port: 0), router: service.makeRouter(), logger: logger)
        try server.start()
        if workers { service.startWorkers() }
        key = try APIKeys.create(in: store, tenantName: "tenant-\(UUID().uuidString.prefix(8))")
        client = TestClient(port: server.port, key: key)
    }

    /// Runs `body` with a fresh harness, then stops it and deletes its database.
    static func with(_ backend: Backend, limits: TenantLimits, workers: Bool = false, _ body: (LimitsHarness) throws -> Void) throws {
        let h = try LimitsHarness(backend, limits: limits, workers: workers)
        defer { h.stop() }
        try body(h)
    }

    func stop() {
        service.stopWorkers(deadline: .seconds(5))
        server.shutdown(deadline: .seconds(2))
        _ = server.waitUntilStopped(timeout: .seconds(5))
        store.close()
        location.destroy()
    }

    func tenantID(_ key: String? = nil) throws -> String {
        guard let t = try store.tenant(forAPIKey: key ?? self.key) else { throw HarnessError("the key has no tenant") }
        return t.id
    }

    /// A client with a new key of a new tenant.
    func newTenantClient() throws -> TestClient {
        TestClient(port: server.port, key: try APIKeys.create(in: store, tenantName: "other-\(UUID().uuidString.prefix(8))"))
    }

    /// The `/metrics` text.
    func metrics() throws -> String { try client.request("GET", "/metrics", auth: false).text }

    /// `TenantLimits` with every limit off except those `configure` sets.
    static func limits(_ configure: (inout TenantLimits) -> Void) -> TenantLimits {
        var l = TenantLimits()
        l.requestsPerSecond = 0
        l.maxDatasetBytes = 0
        l.maxModels = 0
        l.maxActiveJobs = 0
        configure(&l)
        return l
    }
}
