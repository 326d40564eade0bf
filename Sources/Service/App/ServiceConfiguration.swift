// ServiceConfiguration: limits and knobs of the REST service, all with documented defaults.
import Foundation
import HTTP

/// Limits on what one request may ask for (422 beyond them).
public struct ServiceLimits: Sendable {
    /// Largest basis K per block. Default 5000.
    public var maxBasis = 5000
    /// Most unrolled FISTA iterations. Default 1000.
    public var maxIterations = 1000
    /// Widest input. Default 100 000 features.
    public var maxInputDim = 100_000
    /// Most classes. Default 1000.
    public var maxOutputDim = 1000
    /// Most weights in one model (all matrices together). Default 20 million (80 MB as Float32).
    public var maxParameters = 20_000_000
    /// Most epochs per training job. Default 1000.
    public var maxEpochs = 1000
    /// Most bytes the working buffers of one training step (`Architecture.trainingMemory(batch:)`:
    /// the FISTA tape of every iteration, B×N×K×2 floats per block), streamed-task batch or NPEFF
    /// analysis (`AnalysisRequest.workingMemory`: the per-example Fisher factors) may hold; checked
    /// at submit, after a task grows the model and again in the worker. Default 4 GiB (MNIST at
    /// K 2000, N 100, batch 200 trains in about 0.4 GB). Beyond it: 422 naming `max_working_memory`.
    public var maxWorkingMemory = 4 << 30
    /// Most rows per predict request. Default 10 000.
    public var maxPredictRows = 10_000
    /// Most rows of earlier tasks' validation splits a task validates on besides its own
    /// (`validate_on_earlier_tasks`, research/pfc.md §3.1); beyond it each earlier task keeps its
    /// share. Default 50 000 (every MNIST task's split 5 times over).
    public var maxEarlierTaskValidationExamples = 50_000
    /// Most batch indices a task's `skip_batches` lists. Default 100 000.
    public var maxSkipBatches = 100_000
    /// Most tasks (JSON and streamed) one model may learn; one more is 422. Default 1000: the
    /// accuracy matrix of `GET /v1/models/{id}/tasks/metrics` is T × T, and each task validates and
    /// evaluates on the tasks before it.
    public var maxTasksPerModel = 1000
    /// Most example rows a model's batch ledger may list, over all its tasks: a task job records
    /// epochs × training rows (counted at submit as the most it can record), a streamed task its rows as
    /// they arrive. Default 20 million (80 MB stored; a forget reads the whole ledger). Beyond it: 422.
    public var maxLedgerRowsPerModel = 20_000_000
    /// Largest JSON or CSV dataset upload; NDJSON uploads stream and are bounded by `maxStreamedDatasetBytes`. Default 64 MiB.
    public var maxDatasetBytes = 64 << 20
    /// Largest streamed NDJSON dataset upload. Default 1 GiB.
    public var maxStreamedDatasetBytes = 1 << 30
    /// Largest JSON request other than datasets. Default 16 MiB (predict inputs).
    public var maxRequestBytes = 16 << 20
    /// Most multiply-adds one prediction (or forget evaluation) may cost: rows × (d·K + N·K² + C·K)
    /// per PFC block, plus the Gram matrix. Default 5·10¹¹ (10 000 MNIST rows at K 300, N 100 fit;
    /// about 10–30 s on 2 cores). Beyond it: 422 naming `max_predict_work`.
    public var maxPredictWork = 500_000_000_000
    /// Most multiply-adds of forward passes one streamed task (`POST /v1/models/{id}/tasks/stream`)
    /// may train before it is refused, as the stream arrives: it trains on the request's thread.
    /// Default 5·10¹² (10 × `maxPredictWork`; 100 000 MNIST rows at K 300, N 100).
    public var maxStreamedTaskWork = 5_000_000_000_000
    /// Open job event streams per tenant. Default 256; one more is answered 429. A stream holds no
    /// thread (a push stream on its connection, fed by the event hub): its cost is one connection,
    /// one subscriber entry and at most `eventStreamBufferBytes` of unsent events.
    public var maxEventStreamsPerTenant = 256
    /// Open job event streams in all, across tenants. Default 1024 (the server's default
    /// `maxConnections`); one more is answered 503.
    public var maxEventStreams = 1024
    /// Unsent bytes one event stream may hold; a client that falls this far behind is disconnected
    /// (it reconnects with `Last-Event-ID` and gets the current state at once). Default 256 KiB.
    public var eventStreamBufferBytes = 256 * 1024
    /// Seconds between heartbeat comments on an idle event stream. Default 15.
    public var eventStreamHeartbeatSeconds = 15.0

    /// The defaults.
    public init() {}
}

/// Per-client limits: the request rate of each API key, and quotas on what each tenant holds.
/// Zero turns a limit off. Limits are per process: N replicas let a key send N × the rate.
public struct TenantLimits: Sendable {
    /// Sustained requests per second per API key (token-bucket refill rate); beyond it 429 with
    /// `Retry-After`. Default 1000 (a client of a model server may well predict at hundreds a
    /// second); 0: no rate limit.
    public var requestsPerSecond: Double = 1000
    /// Requests a key may send at once after being idle (bucket size). Default 2000.
    public var requestBurst = 2000
    /// Most API keys whose buckets are kept at once; idle keys (whose bucket refilled) go first.
    /// Default 100 000 (a few MB).
    public var maxTrackedKeys = 100_000
    /// Total stored dataset bytes per tenant; beyond it 403 `dataset_bytes_quota_exceeded`.
    /// Default 10 GiB; 0: unlimited.
    public var maxDatasetBytes = 10 << 30
    /// Models per tenant; beyond it 403 `model_quota_exceeded`. Default 1000; 0: unlimited.
    public var maxModels = 1000
    /// Queued plus running jobs per tenant (train, task, analysis); beyond it 429
    /// `job_quota_exceeded` with `Retry-After` (it clears as jobs finish). Default 100; 0: unlimited.
    public var maxActiveJobs = 100
    /// `Retry-After` seconds sent with `job_quota_exceeded`. Default 5.
    public var jobQuotaRetrySeconds = 5

    /// The defaults.
    public init() {}
}

/// How often a running train or task job stores its checkpoint (research/pfc.md §6 loop state: the
/// weights, optimizer statistics, RNG, position, best-validation snapshot and early-stopping counters).
public struct CheckpointInterval: Sendable, Equatable {
    /// A checkpoint after every `epochs`-th epoch; 0 turns checkpoints off. Default 1.
    public var epochs = 1
    /// Also one after the first batch that ends `seconds` after the last checkpoint (bounds the work
    /// lost in long epochs; 0: after every batch). Default 60.
    public var seconds: Double = 60

    public init(epochs: Int = 1, seconds: Double = 60) {
        self.epochs = epochs
        self.seconds = seconds
    }
}

/// How the service runs.
public struct ServiceConfiguration: Sendable {
    /// Where the SQLite file and the bootstrap key file live. Default `./data`.
    public var dataDirectory = "./data"
    /// Training worker threads per process. Default 1 (each job already uses every core).
    public var workers = 1
    /// How long a job's lease lasts without a heartbeat before another process may take it over. Default 30 s.
    public var leaseSeconds: Double = 30
    /// How often running jobs heartbeat (and persist progress). Default 1 s (the API promises ≤ 2 s).
    public var heartbeatSeconds: Double = 1
    /// When train and task jobs store a checkpoint to resume from if their process dies. Default:
    /// after every epoch, and within an epoch once 60 s passed since the last one.
    public var checkpoints = CheckpointInterval()
    /// How often idle workers poll the queue and reclaim expired leases. Default 0.5 s.
    public var pollSeconds: Double = 0.5
    /// How long a queued job of a kind this server does not run waits for a replica that runs it
    /// (one of a newer release, in a rolling upgrade) before this server fails it. Default 600 s.
    public var unknownKindGraceSeconds: Double = 600
    /// Loaded model versions kept in memory for predictions. Default 16.
    public var modelCacheSize = 16
    /// `/healthz` answers 503 "saturated" once a request has waited this long for a handler thread. Default 5 s.
    public var saturationSeconds: Double = 5
    /// Log one line per request (into a bounded buffer written by a thread of its own; lines that
    /// do not fit are dropped and counted in `http_access_log_dropped_total`). Default true.
    public var accessLog = true
    /// Access-log lines as text (swift-log's layout) or JSON objects. Default text.
    public var accessLogFormat = AccessLogFormat.text
    /// How long an API key's answer (valid, or unknown/revoked) is reused without asking the
    /// database: a key revoked by another process (`pfc-server keys revoke`, another replica)
    /// stops working within this bound, and a key created there works within it. A rotated key's
    /// grace period ends on time regardless. Default 2 s; 0 turns the cache off.
    public var authCacheSeconds: Double = 2
    /// Most valid API keys the auth cache holds. Default 10 000 (a few MB).
    public var authCacheCapacity = 10_000
    /// Most unknown or revoked secrets the auth cache holds. Default 10 000.
    public var authRefusedCacheCapacity = 10_000
    /// Request limits.
    public var limits = ServiceLimits()
    /// Request rate per API key and per-tenant quotas.
    public var tenantLimits = TenantLimits()
    /// An identifier of this process for job leases. Default host name and pid.
    public var instanceID = "\(ProcessInfo.processInfo.hostName)-\(ProcessInfo.processInfo.processIdentifier)"

    // Predictions (`Predict/PredictBatcher.swift`, issue 15): dynamic batching on compute threads.
    /// Most rows one FISTA batch of predictions holds; requests with more rows are split into parts
    /// of this size. Default 64 (chosen by `Benchmarks/serve/predict.sh`). Valid: 1…10 000.
    public var predictBatchRows = 64
    /// How long the oldest request of a forming batch waits for more requests of the same model
    /// version (top, every_step) before the batch runs. Default 1 ms; 0 turns batching off (every
    /// request runs alone, in parts of 512 rows). Valid: 0…1000.
    public var predictBatchDelayMilliseconds: Double = 1
    /// Requests waiting for a compute thread; one more is answered 503 `predict_queue_full` with
    /// `Retry-After: 1`. Default 1024 (the server's default connection limit). Valid: 1…1 000 000.
    public var predictQueueLimit = 1024
    /// Compute threads that run prediction batches (each batch splits its FISTA over the engine's
    /// compute threads with single-threaded BLAS). Default 1: one batch at a time, spread over the
    /// cores, so requests arriving meanwhile form the next, larger batch (`Benchmarks/serve/predict.sh`,
    /// 64 clients: 4,000–4,600 req/s, p99 28–35 ms, against 2,500–3,700 and 34–83 ms with a thread per
    /// core, whose concurrent batches stayed at 7 rows on average). More threads run batches side by
    /// side (several models with small batches). Valid: 1…256.
    public var predictThreads = 1
    /// A prediction not answered this many seconds after it arrived is answered 503 and its
    /// compute stops (the handler deadline, which a deferred answer does not have). Default 120; 0: none.
    public var predictTimeoutSeconds: Double = 120

    /// The defaults.
    public init() {}
}
