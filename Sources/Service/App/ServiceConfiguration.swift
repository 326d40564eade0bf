// ServiceConfiguration: limits and knobs of the REST service, all with documented defaults.
import Foundation

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
    /// Most rows per predict request. Default 10 000.
    public var maxPredictRows = 10_000
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
    /// Open job event streams per tenant. Default 4; one more is answered 429.
    public var maxEventStreamsPerTenant = 4
    /// Open job event streams in all, across tenants: each holds a handler thread until the
    /// service-core redesign. Default 8 (half the handler threads); one more is answered 503.
    public var maxEventStreams = 8

    /// The defaults.
    public init() {}
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
    /// How often idle workers poll the queue and reclaim expired leases. Default 0.5 s.
    public var pollSeconds: Double = 0.5
    /// Loaded model versions kept in memory for predictions. Default 16.
    public var modelCacheSize = 16
    /// `/healthz` answers 503 "saturated" once a request has waited this long for a handler thread. Default 5 s.
    public var saturationSeconds: Double = 5
    /// Log one line per request. Default true.
    public var accessLog = true
    /// Request limits.
    public var limits = ServiceLimits()
    /// An identifier of this process for job leases. Default host name and pid.
    public var instanceID = "\(ProcessInfo.processInfo.hostName)-\(ProcessInfo.processInfo.processIdentifier)"

    /// The defaults.
    public init() {}
}
