// What a tenant holds, for quotas: stored dataset bytes, models, queued and running jobs. A quota
// check that must be exact runs in the write transaction that creates the resource, after
// `lockTenantUsage`, so two creations of one tenant cannot both pass on the same count.
import Foundation

/// A tenant's holdings, as the quotas count them.
public struct TenantUsage: Sendable, Equatable {
    /// Sum of `byte_size` over the tenant's datasets (their stored blobs).
    public var datasetBytes: Int
    /// The tenant's models.
    public var models: Int
    /// The tenant's jobs in state queued or running.
    public var activeJobs: Int

    /// Usage with these counts.
    public init(datasetBytes: Int, models: Int, activeJobs: Int) {
        self.datasetBytes = datasetBytes
        self.models = models
        self.activeJobs = activeJobs
    }
}

extension StoreOperations {
    /// Serializes quota checks of one tenant until the transaction ends. PostgreSQL: a
    /// `FOR NO KEY UPDATE` lock on the tenant's row (inserts that reference the tenant take
    /// `FOR KEY SHARE`, which it does not block). SQLite: write transactions are serial already.
    /// Take it just before counting, as late in the transaction as possible.
    public func lockTenantUsage(tenantID: String) throws {
        try withSession(writing: true) { session in
            guard session.dialect == .postgres else { return }
            guard try session.connection.queryOne("SELECT id FROM tenants WHERE id = \(tenantID) FOR NO KEY UPDATE") != nil else {
                throw StoreError.notFound("tenant \(tenantID)")
            }
        }
    }

    /// Total stored dataset bytes of the tenant.
    public func datasetBytes(tenantID: String) throws -> Int {
        try withSession(writing: false) { session in
            try session.connection.queryOne(
                "SELECT CAST(COALESCE(sum(byte_size), 0) AS bigint) AS n FROM datasets WHERE tenant_id = \(tenantID)")?.int("n") ?? 0
        }
    }

    /// How many models the tenant has.
    public func modelCount(tenantID: String) throws -> Int {
        try withSession(writing: false) { session in
            try session.connection.queryOne("SELECT count(*) AS n FROM models WHERE tenant_id = \(tenantID)")?.int("n") ?? 0
        }
    }

    /// How many of the tenant's jobs are queued or running.
    public func activeJobCount(tenantID: String) throws -> Int {
        try withSession(writing: false) { session in
            try session.connection.queryOne(
                "SELECT count(*) AS n FROM jobs WHERE tenant_id = \(tenantID) AND state IN ('queued', 'running')")?.int("n") ?? 0
        }
    }

    /// All three counts from one snapshot.
    public func tenantUsage(tenantID: String) throws -> TenantUsage {
        try withSession(writing: false) { session in
            TenantUsage(datasetBytes: try session.datasetBytes(tenantID: tenantID), models: try session.modelCount(tenantID: tenantID),
                        activeJobs: try session.activeJobCount(tenantID: tenantID))
        }
    }
}
