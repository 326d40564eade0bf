// Issue 12, per-client limits, over real sockets and both stores: the per-API-key rate limit
// (429 + Retry-After), the per-tenant quotas on dataset bytes and models (403) and on queued +
// running jobs (429), exact under concurrent requests, answered per openapi.yaml and counted in
// /metrics; and NUL in names refused with 422 (finding 13).
import Foundation
import HTTP
import Testing
@testable import Service
@testable import Storage
import TestSupport

@Suite struct QuotaTests {
    let validator: OpenAPIValidator
    init() throws { validator = try OpenAPIValidator() }

    func expectDocumented(_ r: TestResponse, _ method: String, _ path: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let headers = Dictionary(r.headers.map { ($0.0, $0.1) }, uniquingKeysWith: { a, _ in a })
        let problems = validator.problems(method: method, path: path, status: r.status, contentType: r.header("Content-Type"),
                                          body: r.body, headers: headers)
        #expect(problems.isEmpty, "\(problems)", sourceLocation: sourceLocation)
    }

    /// A 4-row, 2-feature dataset: its blob is 8 + 4 + 4 × (4 + 2 × 4) = 60 bytes.
    nonisolated(unsafe) static let fourRows: [String: Any] = ["name": "d", "features": [[0.1, 0.9], [0.8, 0.2], [0.2, 0.7], [0.9, 0.1]], "labels": [0, 1, 0, 1]]
    /// A 2-row dataset: 8 + 4 + 2 × 12 = 36 bytes.
    nonisolated(unsafe) static let twoRows: [String: Any] = ["name": "e", "features": [[0.1, 0.9], [0.8, 0.2]], "labels": [0, 1]]
    nonisolated(unsafe) static let model: [String: Any] = ["name": "m", "kind": "pfc", "input_dim": 2, "output_dim": 2, "basis": 4, "iterations": 3]

    @Test(arguments: Backend.all)
    func rateLimitAnswers429WithRetryAfterPerKey(backend: Backend) throws {
        try LimitsHarness.with(backend, limits: LimitsHarness.limits { $0.requestsPerSecond = 0.5; $0.requestBurst = 3 }) { h in
            let c = h.client
            for i in 0..<3 { #expect(try c.request("GET", "/v1/datasets").status == 200, "request \(i + 1) is within the burst") }
            let limited = try c.request("GET", "/v1/datasets")
            #expect(limited.status == 429 && limited.errorCode == "rate_limited", "\(limited.status) \(limited.text)")
            #expect(limited.errorMessage.contains("rate limit") && limited.errorMessage.contains("0.5 requests/s"), "\(limited.errorMessage)")
            let retry = try #require(limited.header("Retry-After").flatMap(Int.init), "Retry-After must be whole seconds")
            #expect((1...2).contains(retry), "at 0.5 tokens/s the next token is at most 2 s away, got \(retry)")
            expectDocumented(limited, "GET", "/v1/datasets")
            #expect(try c.request("POST", "/v1/models", body: Data("{}".utf8)).status == 429, "every /v1 operation is limited")

            // Per key: another key of the same tenant, and another tenant, have buckets of their own.
            let tenant = try h.store.tenant(id: try h.tenantID())
            let sameTenant = TestClient(port: h.server.port, key: try APIKeys.create(in: h.store, tenantName: tenant.name))
            #expect(try sameTenant.request("GET", "/v1/datasets").status == 200)
            #expect(try h.newTenantClient().request("GET", "/v1/models").status == 200)
            // Unauthenticated routes are not rate-limited by key.
            for _ in 0..<5 { #expect(try c.request("GET", "/healthz", auth: false).status == 200) }

            let metrics = try h.metrics()
            #expect(metrics.contains("pfc_rate_limited_total 2"), "\(metrics)")
            #expect(!metrics.contains(tenant.id), "/metrics needs no key: it must not name tenants")
            #expect(metrics.contains("pfc_rate_limit_tracked_keys 3"))
            #expect(metrics.contains("http_requests_total{method=\"GET\",route=\"/v1/datasets\",status=\"429\"} 1"))

            Thread.sleep(forTimeInterval: Double(retry))
            #expect(try c.request("GET", "/v1/datasets").status == 200, "the bucket refills after Retry-After")
        }
    }

    @Test func tokenBucketRefillsAtItsRateAndForgetsIdleKeys() {
        let limiter = RateLimiter(rate: 10, burst: 2, capacity: 4)
        let t0 = ContinuousClock.now
        #expect(limiter.take(key: "a", now: t0) == .allowed)
        #expect(limiter.take(key: "a", now: t0) == .allowed)
        #expect(limiter.take(key: "a", now: t0) == .limited(retryAfterSeconds: 1))
        #expect(limiter.take(key: "a", now: t0 + .milliseconds(100)) == .allowed, "10/s: one token per 100 ms")
        #expect(limiter.take(key: "a", now: t0 + .milliseconds(150)) == .limited(retryAfterSeconds: 1))
        // Memory stays bounded: past capacity, full (idle) buckets are dropped first, then the oldest.
        for i in 0..<50 { _ = limiter.take(key: "k\(i)", now: t0 + .seconds(10) + .milliseconds(i)) }
        #expect(limiter.trackedKeys <= 4)
        let slow = RateLimiter(rate: 0.1, burst: 1, capacity: 10)
        #expect(slow.take(key: "x", now: t0) == .allowed)
        #expect(slow.take(key: "x", now: t0) == .limited(retryAfterSeconds: 10))
        let glacial = RateLimiter(rate: 1e-300, burst: 1, capacity: 1)
        #expect(glacial.take(key: "x", now: t0) == .allowed)
        #expect(glacial.take(key: "x", now: t0) == .limited(retryAfterSeconds: 86_400), "a tiny rate must not trap converting to Int")
    }

    @Test(arguments: Backend.all)
    func modelQuotaIs403NamingTheQuota(backend: Backend) throws {
        try LimitsHarness.with(backend, limits: LimitsHarness.limits { $0.maxModels = 2 }) { h in
            let c = h.client
            let first = try c.json("POST", "/v1/models", Self.model)
            #expect(first.status == 201)
            #expect(try c.json("POST", "/v1/models", Self.model).status == 201)
            let refused = try c.json("POST", "/v1/models", Self.model)
            #expect(refused.status == 403 && refused.errorCode == "model_quota_exceeded", "\(refused.status) \(refused.text)")
            #expect(refused.errorMessage.contains("(models) is 2"), "\(refused.errorMessage)")
            expectDocumented(refused, "POST", "/v1/models")
            let tenant = try h.tenantID()
            #expect(try h.store.modelCount(tenantID: tenant) == 2, "a refused model is not stored")
            #expect(try h.newTenantClient().json("POST", "/v1/models", Self.model).status == 201, "quotas are per tenant")
            #expect(try c.request("DELETE", "/v1/models/\(first.object["id"] as! String)").status == 204)
            #expect(try c.json("POST", "/v1/models", Self.model).status == 201, "a delete frees the quota")
            #expect(try h.metrics().contains("pfc_quota_rejections_total{quota=\"models\"} 1"))
        }
    }

    @Test(arguments: Backend.all)
    func datasetBytesQuotaIs403AndRollsTheUploadBack(backend: Backend) throws {
        try LimitsHarness.with(backend, limits: LimitsHarness.limits { $0.maxDatasetBytes = 96 }) { h in
            let c = h.client
            let tenant = try h.tenantID()
            let first = try c.json("POST", "/v1/datasets", Self.fourRows)
            #expect(first.status == 201, "\(first.text)")
            #expect(try h.store.datasetBytes(tenantID: tenant) == 60)
            // 60 + 60 > 96: refused after the blob is written, inside its transaction, so nothing stays.
            let over = try c.json("POST", "/v1/datasets", Self.fourRows)
            #expect(over.status == 403 && over.errorCode == "dataset_bytes_quota_exceeded", "\(over.status) \(over.text)")
            #expect(over.errorMessage.contains("120 bytes") && over.errorMessage.contains("(dataset_bytes) is 96 bytes"), "\(over.errorMessage)")
            expectDocumented(over, "POST", "/v1/datasets")
            #expect(try h.store.datasets(tenantID: tenant).items.count == 1)
            #expect(try h.store.datasetBytes(tenantID: tenant) == 60)
            // 60 + 36 = 96: exactly at the quota is allowed.
            #expect(try c.json("POST", "/v1/datasets", Self.twoRows).status == 201)
            // Full: refused before the body is parsed (CSV too).
            let full = try c.request("POST", "/v1/datasets?name=c", body: Data("0,0.1\n".utf8), contentType: "text/csv")
            #expect(full.status == 403 && full.errorCode == "dataset_bytes_quota_exceeded" && full.errorMessage.contains("hold 96 bytes"), "\(full.text)")
            #expect(try h.newTenantClient().json("POST", "/v1/datasets", Self.fourRows).status == 201, "quotas are per tenant")
            #expect(try c.request("DELETE", "/v1/datasets/\(first.object["id"] as! String)").status == 204)
            #expect(try c.json("POST", "/v1/datasets", Self.fourRows).status == 201, "a delete frees the quota")
            #expect(try h.metrics().contains("pfc_quota_rejections_total{quota=\"dataset_bytes\"} 2"))
        }
    }

    @Test(arguments: Backend.all)
    func jobQuotaIs429UntilAJobEnds(backend: Backend) throws {
        try LimitsHarness.with(backend, limits: LimitsHarness.limits { $0.maxActiveJobs = 1 }) { h in
            let c = h.client
            let ds = try c.json("POST", "/v1/datasets", Self.fourRows).object["id"] as! String
            let model = try c.json("POST", "/v1/models", Self.model).object["id"] as! String
            let train: [String: Any] = ["dataset_id": ds, "epochs": 1]
            let queued = try c.json("POST", "/v1/models/\(model)/train", train)
            #expect(queued.status == 202, "\(queued.text)")
            let refused = try c.json("POST", "/v1/models/\(model)/train", train)
            #expect(refused.status == 429 && refused.errorCode == "job_quota_exceeded", "\(refused.status) \(refused.text)")
            #expect(refused.header("Retry-After") == "5" && refused.errorMessage.contains("(active_jobs) is 1"), "\(refused.errorMessage)")
            expectDocumented(refused, "POST", "/v1/models/\(model)/train")
            let tenant = try h.tenantID()
            #expect(try h.store.activeJobCount(tenantID: tenant) == 1)
            #expect(try c.request("DELETE", "/v1/jobs/\(queued.object["id"] as! String)").object["state"] as? String == "cancelled")
            #expect(try c.json("POST", "/v1/models/\(model)/train", train).status == 202, "a finished job frees the quota")
            #expect(try h.metrics().contains("pfc_quota_rejections_total{quota=\"active_jobs\"} 1"))
        }
    }

    /// The exact check runs under a tenant lock in the creating transaction: 8 concurrent
    /// creations with room for 3 make exactly 3 (a plain count-then-insert lets more through on PostgreSQL).
    @Test(arguments: Backend.all)
    func concurrentCreationsStopExactlyAtTheQuota(backend: Backend) throws {
        try LimitsHarness.with(backend, limits: LimitsHarness.limits { $0.maxModels = 3 }) { h in
            let statuses = ConcurrentStatuses()
            let port = h.server.port, key = h.key
            DispatchQueue.concurrentPerform(iterations: 8) { _ in
                let status = (try? TestClient(port: port, key: key).json("POST", "/v1/models", Self.model).status) ?? -1
                statuses.append(status)
            }
            #expect(statuses.sorted == [201, 201, 201, 403, 403, 403, 403, 403])
            let tenant = try h.tenantID()
            #expect(try h.store.modelCount(tenantID: tenant) == 3)
        }
    }

    /// Deterministic form of the race: a creation that has passed the check but not committed
    /// holds the tenant's lock, so a second check waits for it and then sees its row. Without
    /// the lock (PostgreSQL, READ COMMITTED) the second check counts 0 and both models are made.
    @Test(arguments: Backend.all)
    func quotaCheckHoldsTheTenantUntilCommit(backend: Backend) throws {
        try LimitsHarness.with(backend, limits: LimitsHarness.limits { $0.maxModels = 1 }) { h in
            let tenant = try h.tenantID()
            let store = h.store, quotas = h.service.quotas
            let firstAdmitted = DispatchSemaphore(value: 0)
            let first = Thread {
                try? store.transaction { s in
                    try quotas.admitModel(tenantID: tenant, in: s)
                    try s.insert(Model(tenantID: tenant, name: "first", kind: "pfc", architecture: "{}"))
                    firstAdmitted.signal()
                    Thread.sleep(forTimeInterval: 0.5)  // committed only after the second check started
                }
            }
            first.start()
            firstAdmitted.wait()
            let second = Result {
                try store.transaction { s in
                    try quotas.admitModel(tenantID: tenant, in: s)
                    try s.insert(Model(tenantID: tenant, name: "second", kind: "pfc", architecture: "{}"))
                }
            }
            guard case .failure(let error as HTTPError) = second else {
                Issue.record("the second creation passed the quota: \(second)")
                return
            }
            #expect(error.status == .forbidden && error.code == "model_quota_exceeded")
            #expect(try store.models(tenantID: tenant).items.map(\.name) == ["first"])
        }
    }

    /// Finding 13: PostgreSQL stored "a\u0000b" as "a" while the API answered "a\u0000b".
    @Test(arguments: Backend.all)
    func nulInANameIs422AndNothingIsStored(backend: Backend) throws {
        try LimitsHarness.with(backend, limits: LimitsHarness.limits { _ in }) { h in
            let c = h.client
            var model = Self.model
            model["name"] = "a\u{0}b"
            let refused = try c.json("POST", "/v1/models", model)
            #expect(refused.status == 422 && refused.errorMessage.contains("name") && refused.errorMessage.contains("NUL"), "\(refused.text)")
            expectDocumented(refused, "POST", "/v1/models")
            var dataset = Self.fourRows
            dataset["name"] = "\u{0}"
            #expect(try c.json("POST", "/v1/datasets", dataset).status == 422)
            // A NUL in the query string is refused by the HTTP layer already (400 malformed query string).
            let csv = try c.request("POST", "/v1/datasets?name=a%00b", body: Data("0,0.1\n1,0.2\n".utf8), contentType: "text/csv")
            #expect([400, 422].contains(csv.status), "\(csv.text)")
            let tenant = try h.tenantID()
            #expect(try h.store.models(tenantID: tenant).items.isEmpty && h.store.datasets(tenantID: tenant).items.isEmpty)
            // Any other name is stored and answered exactly as sent.
            model["name"] = "a\u{1}b é"
            let ok = try c.json("POST", "/v1/models", model)
            #expect(ok.status == 201 && ok.object["name"] as? String == "a\u{1}b é")
            #expect(try h.store.model(id: ok.object["id"] as! String, tenantID: tenant).name == "a\u{1}b é")
        }
    }
}

/// Statuses collected from concurrent requests.
final class ConcurrentStatuses: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [Int] = []
    func append(_ v: Int) { lock.lock(); values.append(v); lock.unlock() }
    var sorted: [Int] { lock.lock(); defer { lock.unlock() }; return values.sorted() }
}
