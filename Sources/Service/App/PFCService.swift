// PFCService: wires the store, the job workers and every REST resource into one router.
import Foundation
import HTTP
import Logging
import Storage

/// The REST service. Make it, hand `makeRouter()` to an `HTTPServer`, and `startWorkers()`.
public final class PFCService: Sendable {
    /// The database.
    public let store: any Store
    /// Limits and knobs.
    public let configuration: ServiceConfiguration
    /// Request counters and latency histograms, exported at `/metrics`.
    public let metrics: MetricsRegistry
    let modelCache: ModelCache
    let workers: JobWorkers
    let eventStreams: EventStreamSlots
    /// Job events of this process, fed by the store (and a `PGListener`, see `receiveJobNotification`).
    let jobEvents: JobEventHub
    /// The per-API-key request rate limit; nil when `tenantLimits.requestsPerSecond` is 0.
    let rateLimiter: RateLimiter?
    /// Per-tenant quotas, checked where datasets, models and jobs are created.
    let quotas: TenantQuotas
    let logger: Logger
    /// Where access-log lines go; nil when `configuration.accessLog` is off. Flush it before exiting.
    public let accessLog: AccessLogWriter?

    /// A service over `store`; access-log lines go to `accessLog` (default: standard error).
    public init(store: any Store, configuration: ServiceConfiguration = ServiceConfiguration(),
                metrics: MetricsRegistry = MetricsRegistry(), logger: Logger = Logger(label: "pfc.service"),
                accessLog: AccessLogWriter? = nil) {
        self.accessLog = configuration.accessLog ? (accessLog ?? .standardError()) : nil
        self.store = store
        self.configuration = configuration
        self.metrics = metrics
        self.logger = logger
        self.modelCache = ModelCache(capacity: configuration.modelCacheSize)
        self.workers = JobWorkers(store: store, configuration: configuration, logger: logger)
        self.eventStreams = EventStreamSlots(perTenant: configuration.limits.maxEventStreamsPerTenant,
                                             total: configuration.limits.maxEventStreams)
        self.jobEvents = JobEventHub(store: store, logger: logger)
        let limits = configuration.tenantLimits
        self.rateLimiter = limits.requestsPerSecond > 0
            ? RateLimiter(rate: limits.requestsPerSecond, burst: max(1, limits.requestBurst), capacity: max(1, limits.maxTrackedKeys)) : nil
        self.quotas = TenantQuotas(store: store, limits: limits)
    }

    /// A `pfc_job_events` NOTIFY payload (`<job id>:<revision>`) from the store's listen connection.
    public func receiveJobNotification(_ payload: String) { jobEvents.receiveNotification(payload) }

    /// The listen connection was re-made: re-read the jobs this process's streams follow.
    public func resynchronizeJobEvents() { jobEvents.resynchronize() }

    /// Starts the training workers (threads of their own, not the handler pool).
    public func startWorkers() { workers.start() }

    /// Stops claiming jobs; waits up to `deadline` for running jobs to stop at their next step.
    /// Unfinished jobs keep their lease and are reclaimed by any replica once it expires.
    public func stopWorkers(deadline: Duration) { workers.stop(deadline: deadline) }

    /// The router with every route and middleware.
    public func makeRouter() -> Router {
        var r = Router()
        r.use(RequestIDMiddleware())
        if let accessLog { r.use(AccessLogMiddleware(writer: accessLog, format: configuration.accessLogFormat)) }
        r.use(MetricsMiddleware(registry: metrics))
        r.use(TenantAuthMiddleware(store: store, cache: makeAuthCache()))
        if let rateLimiter { r.use(RateLimitMiddleware(limiter: rateLimiter)) }
        registerOps(&r)
        registerDatasets(&r)
        registerModels(&r)
        registerJobs(&r)
        registerPredictions(&r)
        registerComponents(&r)
        registerContinual(&r)
        registerTaskStream(&r)
        registerAnalyses(&r)
        return r
    }

    private func makeAuthCache() -> AuthCache? {
        let seconds = configuration.authCacheSeconds
        guard seconds > 0 else { return nil }
        return AuthCache(lifetime: .milliseconds(Int64((min(seconds, 3600) * 1000).rounded(.up))),
                         capacity: max(1, configuration.authCacheCapacity), refusedCapacity: max(1, configuration.authRefusedCacheCapacity))
    }

    // MARK: - Operations endpoints

    func registerOps(_ r: inout Router) {
        // On the connection queue: never blocks, and answers even when every handler thread is busy.
        // 503 "saturated" once a request has waited longer than `saturationSeconds` for a handler
        // thread: the process is up but cannot serve (a load balancer should look elsewhere).
        let saturation = Duration.milliseconds(Int64((configuration.saturationSeconds * 1000).rounded()))
        r.get("/healthz", options: RouteOptions(execution: .connectionQueue)) { _, ctx in
            if let server = ctx.server, server.handlerQueueDelay > saturation {
                let waited = Double(server.handlerQueueDelay.components.seconds) + Double(server.handlerQueueDelay.components.attoseconds) / 1e18
                var r = Response.json(#"{"status":"saturated","handler_queue_delay_seconds":\#(String(format: "%.3f", waited))}"#,
                                      status: .serviceUnavailable)
                r.headers.replaceOrAdd(name: "Retry-After", value: "1")
                return r
            }
            return Response.json(#"{"status":"ok"}"#)
        }
        r.get("/readyz") { [store] _, _ in
            let report: MigrationReport
            do { report = try store.migrationStatus() } catch {
                throw HTTPError(.serviceUnavailable, message: "database not ready: \(error)")
            }
            guard report.pending.isEmpty else {
                throw HTTPError(.serviceUnavailable, message: "\(report.pending.count) migration(s) pending; run `pfc-server migrate`")
            }
            return try JSONCoding.response(ReadyDTO(database: store.backend.rawValue, migrations: report.previouslyApplied.count))
        }
        r.get("/metrics") { [self] _, ctx in
            var text = metrics.prometheusText()
            text += (try? jobStateMetrics()) ?? ""
            text += eventStreamMetrics()
            if let server = ctx.server {
                let d = server.handlerQueueDelay.components
                text += "# HELP pfc_handler_queue_delay_seconds How long the oldest request has waited for a handler thread.\n"
                text += "# TYPE pfc_handler_queue_delay_seconds gauge\npfc_handler_queue_delay_seconds \(Double(d.seconds) + Double(d.attoseconds) / 1e18)\n"
            }
            text += rateLimiter?.prometheusText() ?? ""
            text += accessLog?.prometheusText() ?? ""
            text += quotas.prometheusText()
            var resp = Response.text(text)
            resp.headers.replaceOrAdd(name: "Content-Type", value: "text/plain; version=0.0.4; charset=utf-8")
            return resp
        }
        r.get("/openapi.yaml") { _, _ in
            var resp = Response.text(OpenAPIDocument.yaml)
            resp.headers.replaceOrAdd(name: "Content-Type", value: "application/yaml")
            return resp
        }
    }

    func eventStreamMetrics() -> String {
        var text = "# HELP pfc_event_streams_open Job event streams open on this process.\n# TYPE pfc_event_streams_open gauge\n"
        text += "pfc_event_streams_open \(eventStreams.openCount)\n"
        text += "# HELP pfc_event_streams_refused_total Event streams refused by limit (tenant: per-tenant cap, server: total cap).\n"
        text += "# TYPE pfc_event_streams_refused_total counter\n"
        let refused = eventStreams.refused.withLock { $0 }
        for reason in ["tenant", "server"] { text += "pfc_event_streams_refused_total{reason=\"\(reason)\"} \(refused[reason] ?? 0)\n" }
        return text
    }

    func jobStateMetrics() throws -> String {
        let counts = try store.jobCountsByState()
        var text = "# HELP pfc_jobs Jobs by state.\n# TYPE pfc_jobs gauge\n"
        for state in JobState.allCases { text += "pfc_jobs{state=\"\(state.rawValue)\"} \(counts[state] ?? 0)\n" }
        text += "# HELP pfc_training_examples_per_second Throughput of the last training step on this process.\n"
        text += "# TYPE pfc_training_examples_per_second gauge\npfc_training_examples_per_second \(workers.lastExamplesPerSecond)\n"
        return text
    }
}

struct ReadyDTO: Encodable {
    var status = "ready"
    var database: String
    var migrations: Int
}
