// PFCService: wires the store, the job workers and every REST resource into one router.
import Foundation
import HTTP
import CoreMetrics
import Logging
import Metrics
import PFC
import Storage

/// The REST service. Make it, hand `makeRouter()` to an `HTTPServer`, and `startWorkers()`.
public final class PFCService: Sendable {
    /// The database.
    public let store: any Store
    /// Limits and knobs.
    public let configuration: ServiceConfiguration
    /// Request counters and latency histograms, exported at `/metrics`.
    public let metrics: MetricsRegistry
    /// swift-metrics instruments made with this factory (`Counter(label:dimensions:factory:)`, `Recorder`,
    /// `Timer`) are this service's own and appear at `/metrics`; no global `MetricsSystem.bootstrap`.
    public let metricsFactory: any MetricsFactory
    let modelCache: ModelCache
    /// Models and their networks, for the controllers that serve them.
    let models: ModelLoader
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
    /// Runs predictions in batches on compute threads of its own.
    public let predictBatcher: PredictBatcher

    /// A service over `store`; access-log lines go to `accessLog` (default: standard error).
    public init(store: any Store, configuration: ServiceConfiguration = ServiceConfiguration(),
                metrics: MetricsRegistry = MetricsRegistry(), logger: Logger = Logger(label: "pfc.service"),
                accessLog: AccessLogWriter? = nil) {
        self.accessLog = configuration.accessLog ? (accessLog ?? .standardError()) : nil
        self.store = store
        self.configuration = configuration
        self.metrics = metrics
        self.metricsFactory = metrics.factory
        self.logger = logger
        self.modelCache = ModelCache(capacity: configuration.modelCacheSize)
        self.models = ModelLoader(store: store, cache: modelCache)
        self.workers = JobWorkers(store: store, configuration: configuration, logger: logger)
        self.eventStreams = EventStreamSlots(perTenant: configuration.limits.maxEventStreamsPerTenant,
                                             total: configuration.limits.maxEventStreams)
        self.jobEvents = JobEventHub(store: store, logger: logger)
        let limits = configuration.tenantLimits
        self.rateLimiter = limits.requestsPerSecond > 0
            ? RateLimiter(rate: limits.requestsPerSecond, burst: max(1, limits.requestBurst), capacity: max(1, limits.maxTrackedKeys)) : nil
        self.quotas = TenantQuotas(store: store, limits: limits)
        self.predictBatcher = PredictBatcher(options: Self.predictOptions(configuration), metrics: metrics.factory,
                                             sparsity: workers.sparsity)
        // The loops run the embedded store's read-only hot routes inline (`inlineOnEmbeddedStore`):
        // there each reads on a connection of its own, never waiting for the shared readers.
        (store as? SQLiteStore)?.giveOwnReaders { HTTPServer.isEventLoopThread }
    }

    /// Where a read-only route whose work is one or two indexed statements runs: inline on the
    /// connection (the event loop) on the embedded store, whose reads are in-process and take
    /// microseconds on the loop's own reader connection (`SQLiteStore.giveOwnReaders`); on the
    /// handler pool with PostgreSQL, whose every statement is a network round trip. Measured on
    /// `GET /v1/models/{id}` (64 clients, `Benchmarks/serve/run.sh`): about 7,400 req/s through the
    /// pool, whose hand-offs (pool wake-up, reader pool, the answer's `queue.sync`) cost a third of
    /// the CPU in context switches, against about 14,000 inline.
    var inlineOnEmbeddedStore: RouteOptions {
        RouteOptions(execution: store.backend == .sqlite ? .connectionQueue : .handlerPool)
    }

    deinit { predictBatcher.shutdown() }

    /// The batcher's options from the configuration, clamped to their valid ranges.
    static func predictOptions(_ c: ServiceConfiguration) -> PredictBatcher.Options {
        var o = PredictBatcher.Options()
        o.maxRows = min(max(1, c.predictBatchRows), 10_000)
        let delay = c.predictBatchDelayMilliseconds.isFinite ? min(max(0, c.predictBatchDelayMilliseconds), 1000) : 0
        o.maxDelay = .microseconds(Int64((delay * 1000).rounded()))
        o.queueLimit = min(max(1, c.predictQueueLimit), 1_000_000)
        o.threads = min(max(1, c.predictThreads), 256)
        let t = c.predictTimeoutSeconds
        o.timeout = t.isFinite && t > 0 ? .milliseconds(Int64((min(t, 86_400) * 1000).rounded(.up))) : nil
        return o
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
        // Routes without a limit of their own take JSON bodies: over this they are refused on the head.
        r.defaultMaxBodyBytes = configuration.limits.maxRequestBytes
        r.use(RequestIDMiddleware())
        if let accessLog { r.use(AccessLogMiddleware(writer: accessLog, format: configuration.accessLogFormat)) }
        r.use(MetricsMiddleware(registry: metrics))
        r.use(TenantAuthMiddleware(store: store, cache: makeAuthCache()))
        if let rateLimiter { r.use(RateLimitMiddleware(limiter: rateLimiter)) }
        let controllers: [any RouteCollection] = [
            OpsController(store: store, metrics: metrics, saturationSeconds: configuration.saturationSeconds, workers: workers,
                          eventStreams: eventStreams, rateLimiter: rateLimiter, accessLog: accessLog, quotas: quotas),
            DatasetController(store: store, limits: configuration.limits, quotas: quotas),
            PredictController(models: models, limits: configuration.limits, batcher: predictBatcher),
            ComponentController(store: store, models: models),
            UIController(),
        ]
        for controller in controllers { controller.register(on: &r) }
        // Not controllers yet: these share checkDataset and the job plumbing with PFCService.
        registerModels(&r)
        registerRegistry(&r)
        registerJobs(&r)
        registerContinual(&r)
        registerTaskStream(&r)
        registerAnalyses(&r)
        registerEvaluate(&r)
        return r
    }

    private func makeAuthCache() -> AuthCache? {
        let seconds = configuration.authCacheSeconds
        guard seconds > 0 else { return nil }
        return AuthCache(lifetime: .milliseconds(Int64((min(seconds, 3600) * 1000).rounded(.up))),
                         capacity: max(1, configuration.authCacheCapacity), refusedCapacity: max(1, configuration.authRefusedCacheCapacity))
    }

    /// A version's network through the cache (for the route files that still extend the service).
    func loadNetwork(modelID: String, tenantID: String, version: Int?) throws -> (Int, any Network) {
        try models.network(modelID: modelID, tenantID: tenantID, version: version)
    }

    /// The architecture and seed stored with a model.
    func spec(of m: Model) throws -> ModelSpec { try models.spec(of: m) }
}
