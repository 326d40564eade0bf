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

    // MARK: - Jobs

    /// Refuses a new job (429 `job_quota_exceeded`) when the tenant already has `maxActiveJobs`
    /// queued or running. Its own read; call before validating, then `admitJob(tenantID:in:)`.
    func admitJob(tenantID: String) throws {
        guard limits.maxActiveJobs > 0 else { return }
        try checkJobs(try storeCall { try store.activeJobCount(tenantID: tenantID) })
    }

    /// The same, exact: call inside the transaction that enqueues the job, before `enqueue`.
    func admitJob(tenantID: String, in session: StoreSession) throws {
        guard limits.maxActiveJobs > 0 else { return }
        try session.lockTenantUsage(tenantID: tenantID)
        try checkJobs(try session.activeJobCount(tenantID: tenantID))
    }

    private func checkJobs(_ active: Int) throws {
        guard active >= limits.maxActiveJobs else { return }
        count(.activeJobs)
        throw HTTPError(.tooManyRequests, code: "job_quota_exceeded",
                        message: "job quota exceeded: the tenant has \(active) queued or running jobs and its quota (active_jobs) is "
                            + "\(limits.maxActiveJobs); retry when one finishes, or cancel one",
                        headers: ["Retry-After": "\(max(1, limits.jobQuotaRetrySeconds))"])
    }

    // MARK: - Models

    /// Refuses a new model (403 `model_quota_exceeded`) when the tenant has `maxModels`. Its own read.
    func admitModel(tenantID: String) throws {
        guard limits.maxModels > 0 else { return }
        try checkModels(try storeCall { try store.modelCount(tenantID: tenantID) })
    }

    /// The same, exact: call inside the transaction that inserts the model, before the insert.
    func admitModel(tenantID: String, in session: StoreSession) throws {
        guard limits.maxModels > 0 else { return }
        try session.lockTenantUsage(tenantID: tenantID)
        try checkModels(try session.modelCount(tenantID: tenantID))
    }

    private func checkModels(_ models: Int) throws {
        guard models >= limits.maxModels else { return }
        count(.models)
        throw HTTPError(.forbidden, code: "model_quota_exceeded",
                        message: "model quota exceeded: the tenant has \(models) models and its quota (models) is \(limits.maxModels); "
                            + "delete a model first")
    }

    // MARK: - Dataset bytes

    /// Refuses an upload before its body is read (403 `dataset_bytes_quota_exceeded`) when the
    /// tenant's datasets already fill `maxDatasetBytes`. Its own read.
    func admitDatasetUpload(tenantID: String) throws {
        guard limits.maxDatasetBytes > 0 else { return }
        let stored = try storeCall { try store.datasetBytes(tenantID: tenantID) }
        guard stored >= limits.maxDatasetBytes else { return }
        count(.datasetBytes)
        throw datasetBytesError("the tenant's datasets hold \(stored) bytes")
    }

    /// Exact: call inside the upload's transaction after its blob is written (`bytes` of it);
    /// throwing rolls the whole upload back.
    func admitDatasetBytes(tenantID: String, adding bytes: Int, in session: StoreSession) throws {
        guard limits.maxDatasetBytes > 0 else { return }
        try session.lockTenantUsage(tenantID: tenantID)
        let total = try session.datasetBytes(tenantID: tenantID)  // includes this dataset's bytes
        guard total > limits.maxDatasetBytes else { return }
        count(.datasetBytes)
        throw datasetBytesError("this dataset's \(bytes) bytes would bring the tenant's datasets to \(total) bytes")
    }

    private func datasetBytesError(_ detail: String) -> HTTPError {
        HTTPError(.forbidden, code: "dataset_bytes_quota_exceeded",
                  message: "dataset storage quota exceeded: \(detail) and its quota (dataset_bytes) is \(limits.maxDatasetBytes) bytes; "
                      + "delete datasets first")
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
        let values: [Quota: Int] = [.datasetBytes: limits.maxDatasetBytes, .models: limits.maxModels, .activeJobs: limits.maxActiveJobs]
        for quota in Quota.allCases { out += "pfc_quota_limit{quota=\"\(quota.rawValue)\"} \(values[quota] ?? 0)\n" }
        return out
    }
}
