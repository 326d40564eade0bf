// TenantQuotas: what one tenant may hold (dataset bytes, models, queued + running jobs), checked
// where each is created, with the rejections counted for /metrics.
import Foundation
import HTTP
import Storage
import Synchronization

/// A per-tenant quota.
enum Quota: String, CaseIterable, Sendable {
    case datasetBytes = "dataset_bytes"
    case models
    case activeJobs = "active_jobs"
}

/// Checks creations against `TenantLimits`. Each check comes in two forms: one that reads on its
/// own (cheap, before expensive validation, but two racing requests can both pass it), and one
/// that runs inside the write transaction that creates the resource, after
/// `lockTenantUsage`, which is exact. Over quota: 403 for what only a delete frees (dataset
/// bytes, models), 429 with `Retry-After` for jobs (which clears as jobs finish).
final class TenantQuotas: Sendable {
    let limits: TenantLimits
    private let store: any Store
    private let rejections = Mutex<[Quota: Int]>([:])

    init(store: any Store, limits: TenantLimits) {
        self.store = store
        self.limits = limits
    }

    /// Refuses a new job (429 `job_quota_exceeded`) when the tenant already has `maxActiveJobs`
    /// queued or running. Its own read; call before validating, then `admitJob(tenantID:in:)`.
    func admitJob(tenantID: String) throws { try admit(.activeJobs, tenantID: tenantID, in: nil) }

    /// The same, exact: call inside the transaction that enqueues the job, before `enqueue`.
    func admitJob(tenantID: String, in session: StoreSession) throws { try admit(.activeJobs, tenantID: tenantID, in: session) }

    /// Refuses a new model (403 `model_quota_exceeded`) when the tenant has `maxModels`. Its own read.
    func admitModel(tenantID: String) throws { try admit(.models, tenantID: tenantID, in: nil) }

    /// The same, exact: call inside the transaction that inserts the model, before the insert.
    func admitModel(tenantID: String, in session: StoreSession) throws { try admit(.models, tenantID: tenantID, in: session) }

    /// Refuses an upload before its body is read (403 `dataset_bytes_quota_exceeded`) when the
    /// tenant's datasets already fill `maxDatasetBytes`. Its own read.
    func admitDatasetUpload(tenantID: String) throws { try admit(.datasetBytes, tenantID: tenantID, in: nil) }

    /// Exact: call inside the upload's transaction after its blob is written (`bytes` of it);
    /// throwing rolls the whole upload back.
    func admitDatasetBytes(tenantID: String, adding bytes: Int, in session: StoreSession) throws {
        let limit = limit(of: .datasetBytes)
        guard limit > 0 else { return }
        try session.lockTenantUsage(tenantID: tenantID)
        let total = try session.datasetBytes(tenantID: tenantID)  // includes this dataset's bytes
        guard total > limit else { return }
        count(.datasetBytes)
        throw refusal(.datasetBytes, "this dataset's \(bytes) bytes would bring the tenant's datasets to \(total) bytes")
    }

    /// The configured limit of `quota` (0: unlimited).
    func limit(of quota: Quota) -> Int {
        switch quota {
        case .datasetBytes: limits.maxDatasetBytes
        case .models: limits.maxModels
        case .activeJobs: limits.maxActiveJobs
        }
    }

    /// Refuses when the tenant already uses all of `quota`: with `session`, exactly (under the
    /// tenant lock, in the creating transaction); without, by a read of its own.
    private func admit(_ quota: Quota, tenantID: String, in session: StoreSession?) throws {
        let limit = limit(of: quota)
        guard limit > 0 else { return }
        let used: Int
        if let session {
            try session.lockTenantUsage(tenantID: tenantID)
            used = try usage(quota, tenantID: tenantID, in: session)
        } else {
            used = try storeCall { try usage(quota, tenantID: tenantID, in: store) }
        }
        guard used >= limit else { return }
        count(quota)
        switch quota {
        case .datasetBytes: throw refusal(quota, "the tenant's datasets hold \(used) bytes")
        case .models: throw refusal(quota, "the tenant has \(used) models")
        case .activeJobs: throw refusal(quota, "the tenant has \(used) queued or running jobs")
        }
    }

    private func usage(_ quota: Quota, tenantID: String, in operations: some StoreOperations) throws -> Int {
        switch quota {
        case .datasetBytes: try operations.datasetBytes(tenantID: tenantID)
        case .models: try operations.modelCount(tenantID: tenantID)
        case .activeJobs: try operations.activeJobCount(tenantID: tenantID)
        }
    }

    /// The error for `quota`, with `detail` on the tenant's usage.
    private func refusal(_ quota: Quota, _ detail: String) -> HTTPError {
        let limit = limit(of: quota)
        switch quota {
        case .datasetBytes:
            return HTTPError(.forbidden, code: "dataset_bytes_quota_exceeded",
                             message: "dataset storage quota exceeded: \(detail) and its quota (dataset_bytes) is \(limit) bytes; delete datasets first")
        case .models:
            return HTTPError(.forbidden, code: "model_quota_exceeded",
                             message: "model quota exceeded: \(detail) and its quota (models) is \(limit); delete a model first")
        case .activeJobs:
            return HTTPError(.tooManyRequests, code: "job_quota_exceeded",
                             message: "job quota exceeded: \(detail) and its quota (active_jobs) is \(limit); retry when one finishes, or cancel one",
                             headers: ["Retry-After": "\(max(1, limits.jobQuotaRetrySeconds))"])
        }
    }

    // MARK: - Metrics

    private func count(_ quota: Quota) { rejections.withLock { $0[quota, default: 0] += 1 } }

    /// Rejections so far of `quota`.
    func rejectionCount(_ quota: Quota) -> Int { rejections.withLock { $0[quota] ?? 0 } }

    /// The quotas' metrics in the Prometheus text format.
    func prometheusText() -> String {
        let counts = rejections.withLock { $0 }
        var out = "# HELP pfc_quota_rejections_total Creations refused because the tenant was at a quota, by quota.\n"
        out += "# TYPE pfc_quota_rejections_total counter\n"
        for quota in Quota.allCases { out += "pfc_quota_rejections_total{quota=\"\(quota.rawValue)\"} \(counts[quota] ?? 0)\n" }
        out += "# HELP pfc_quota_limit Each per-tenant quota (0: unlimited).\n# TYPE pfc_quota_limit gauge\n"
        for quota in Quota.allCases { out += "pfc_quota_limit{quota=\"\(quota.rawValue)\"} \(limit(of: quota))\n" }
        return out
    }
}
