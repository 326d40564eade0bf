// `pfc-server serve`: the REST service (datasets, models, training jobs, predictions) on our HTTP
// server, over PostgreSQL or the embedded SQLite file; behind --echo also POST /echo (benchmarks).
// SIGTERM and SIGINT shut it down gracefully and the process exits 0; with --tls-cert/--tls-key,
// SIGHUP re-reads the certificate and key for new connections.

import ArgumentParser
import Dispatch
import Foundation
import HTTP
import Linalg
import Logging
import Service
import Storage
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `pfc-server serve`: starts the HTTP server.
struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "serve", abstract: "Start the HTTP server.")

    @Option(help: "Address to bind (0.0.0.0, ::, 127.0.0.1, …).")
    var host: String = "127.0.0.1"

    @Option(help: "Port to bind (0 picks a free one).")
    var port: Int = 8080

    @Flag(help: "Serve POST /echo, which answers a JSON body with itself (for benchmarks).")
    var echo = false

    @Option(help: "Handler threads.")
    var handlerThreads: Int = 16

    @Option(help: "Maximum open connections (beyond: 503).")
    var maxConnections: Int = 1024

    @Option(help: "Maximum open connections from one client IP address (beyond: 503 for that address only).")
    var maxConnectionsPerAddress: Int = 128

    @Option(help: "Serve HTTPS (TLS 1.2 and 1.3) with this PEM certificate chain; needs --tls-key. SIGHUP reloads it.")
    var tlsCert: String?

    @Option(help: "The PEM private key of --tls-cert.")
    var tlsKey: String?

    @Option(help: "Seconds a handler may take to answer a buffered request before the client gets 503 (0: no limit).")
    var handlerTimeoutSeconds: Double = 120

    @Option(help: "Graceful-shutdown deadline in seconds.")
    var shutdownSeconds: Int = 10

    @Flag(inversion: .prefixedNo, help: "Log one line per request (buffered and written by a thread of its own: a slow destination never slows a request; lines that do not fit are dropped and counted in http_access_log_dropped_total).")
    var accessLog = true

    @Option(help: "Access-log line format: text, or json (one object per line: time, request_id, method, route, path, status, bytes_out, latency_ms, peer).")
    var logFormat: String = "text"

    @Option(help: "Append access-log lines to this file (created 0640) instead of standard error.")
    var accessLogFile: String?

    @Option(help: "Seconds an API key's check is reused without the database (a key revoked or created by another process takes effect within it; 0: check on every request).")
    var authCacheSeconds: Double = ServiceConfiguration().authCacheSeconds

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @OptionGroup var database: DatabaseOptions

    @Flag(inversion: .prefixedNo, help: "Apply pending migrations at start-up (else refuse an out-of-date schema).")
    var migrate = true

    @Option(help: "Training worker threads (each job uses --threads cores).")
    var workers: Int = 1

    @Option(help: "Compute threads per training job or prediction batch; default all cores.")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    @Option(help: "Seconds a job lease lasts without a heartbeat before another replica may take the job.")
    var leaseSeconds: Double = 30

    @Option(help: "Seconds a queued job of a kind this release does not run waits for a replica that runs it (a rolling upgrade) before it is failed.")
    var unknownKindGraceSeconds: Double = 600

    @Option(help: "Train and task jobs store a checkpoint after every N-th epoch (a reclaimed job resumes from it; 0: no checkpoints).")
    var checkpointEpochs: Int = 1

    @Option(help: "Also within an epoch, once this many seconds passed since the last checkpoint (0: after every batch).")
    var checkpointSeconds: Double = 60

    @Option(help: "This process's name in job leases; default host-pid.")
    var instanceID: String?

    @Option(name: .customLong("rate-limit"), help: "Requests per second per API key, sustained (beyond: 429 with Retry-After; 0: no limit).")
    var rateLimit: Double = TenantLimits().requestsPerSecond

    @Option(name: .customLong("rate-burst"), help: "Requests an API key may send at once after being idle.")
    var rateBurst: Int = TenantLimits().requestBurst

    @Option(name: .customLong("quota-dataset-bytes"), help: "Stored dataset bytes per tenant (beyond: 403; 0: unlimited).")
    var quotaDatasetBytes: Int = TenantLimits().maxDatasetBytes

    @Option(name: .customLong("quota-models"), help: "Models per tenant (beyond: 403; 0: unlimited).")
    var quotaModels: Int = TenantLimits().maxModels

    @Option(name: .customLong("quota-jobs"), help: "Queued plus running jobs per tenant (beyond: 429; 0: unlimited).")
    var quotaJobs: Int = TenantLimits().maxActiveJobs

    @Option(help: "Most rows per prediction batch; larger requests are split into parts of this size (1…10000).")
    var predictBatchRows: Int = ServiceConfiguration().predictBatchRows

    @Option(help: "Milliseconds the oldest request of a forming prediction batch waits for more of the same model version (0: no batching; 0…1000).")
    var predictBatchDelayMs: Double = ServiceConfiguration().predictBatchDelayMilliseconds

    @Option(help: "Predictions waiting for a compute thread beyond which one more is answered 503 with Retry-After (1…1000000).")
    var predictQueueLimit: Int = ServiceConfiguration().predictQueueLimit

    @Option(help: "Compute threads running prediction batches, each spread over the cores; default 1 (1…256).")
    var predictThreads: Int = ServiceConfiguration().predictThreads

    @Option(help: "Most multiply-adds one prediction (or streamed-task batch) may cost, max_predict_work; evaluate and forget answer at once up to a tenth of it and queue larger work as jobs (10⁶…10¹⁵).")
    var maxPredictWork: Int = ServiceLimits().maxPredictWork

    @Option(help: "Most memory one training step or NPEFF analysis may hold (max_working_memory: the FISTA tape of every iteration; the per-example Fisher factors), in MiB (64…1048576).")
    var maxWorkingMemoryMib: Int = ServiceLimits().maxWorkingMemory >> 20

    func run() throws {
        try KernelCheck.requireRunnableKernels()
        Self.boundMallocArenas()
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "pfc.serve")

        var config = HTTPServer.Configuration(host: host, port: port)
        config.handlerThreads = handlerThreads
        config.maxConnections = maxConnections
        guard maxConnectionsPerAddress >= 1 else { throw ValidationError("--max-connections-per-address must be at least 1") }
        config.maxConnectionsPerAddress = maxConnectionsPerAddress
        switch (tlsCert, tlsKey) {
        case let (cert?, key?): config.tls = TLSConfiguration(certificatePath: cert, privateKeyPath: key)
        case (nil, nil): break
        default: throw ValidationError("--tls-cert and --tls-key go together")
        }
        config.shutdownDeadline = .seconds(shutdownSeconds)
        guard handlerTimeoutSeconds.isFinite, (0...86_400).contains(handlerTimeoutSeconds),
              handlerTimeoutSeconds == 0 || handlerTimeoutSeconds >= 0.001 else {
            throw ValidationError("--handler-timeout-seconds must be 0 (no limit) or in 0.001…86400")
        }
        config.handlerTimeout = handlerTimeoutSeconds > 0 ? .milliseconds(Int((handlerTimeoutSeconds * 1000).rounded())) : nil

        ComputeThreads.set(threads)
        let store: any Store
        do { store = try database.open(migrate: migrate) } catch let error as StoreError {
            throw ValidationError("database: \(error)")
        }
        var serviceConfig = ServiceConfiguration()
        serviceConfig.dataDirectory = database.resolvedDataDirectory
        serviceConfig.workers = workers
        serviceConfig.leaseSeconds = leaseSeconds
        guard unknownKindGraceSeconds.isFinite, (0...31_536_000).contains(unknownKindGraceSeconds) else {
            throw ValidationError("--unknown-kind-grace-seconds must be in 0…31536000")
        }
        serviceConfig.unknownKindGraceSeconds = unknownKindGraceSeconds
        guard (0...1_000_000).contains(checkpointEpochs) else { throw ValidationError("--checkpoint-epochs must be in 0…1000000 (0: off)") }
        guard checkpointSeconds.isFinite, (0...86_400).contains(checkpointSeconds) else {
            throw ValidationError("--checkpoint-seconds must be in 0…86400")
        }
        serviceConfig.checkpoints = CheckpointInterval(epochs: checkpointEpochs, seconds: checkpointSeconds)
        serviceConfig.accessLog = accessLog
        guard let format = AccessLogFormat(rawValue: logFormat) else { throw ValidationError("--log-format must be text or json") }
        serviceConfig.accessLogFormat = format
        guard authCacheSeconds.isFinite, (0...3600).contains(authCacheSeconds) else {
            throw ValidationError("--auth-cache-seconds must be in 0…3600 (0: no cache)")
        }
        serviceConfig.authCacheSeconds = authCacheSeconds
        let accessLogWriter: AccessLogWriter?
        do { accessLogWriter = accessLog ? try accessLogFile.map { try AccessLogWriter(path: $0) } ?? .standardError() : nil } catch {
            throw ValidationError("\(error)")
        }
        if let instanceID { serviceConfig.instanceID = instanceID }
        serviceConfig.tenantLimits = try tenantLimits()
        try configurePredictions(&serviceConfig)
        if let key = try APIKeys.bootstrapDefaultTenant(store: store, dataDirectory: serviceConfig.dataDirectory) {
            FileHandle.standardOutput.write(Data(
                "Created tenant 'default'. Its API key (shown once; also in \(serviceConfig.dataDirectory)/default-api-key):\n\(key)\n".utf8))
        }
        let service = PFCService(store: store, configuration: serviceConfig, logger: Logger(label: "pfc.service"),
                                 accessLog: accessLogWriter)
        var router = service.makeRouter()
        if echo { addEcho(&router) }
        // Job events from other replicas: one dedicated LISTEN connection per process (PostgreSQL only;
        // on SQLite the store tells the event hub itself). After a lost connection is re-made, the
        // hub re-reads the jobs its streams follow.
        let listener = (store as? PostgresStore).map { pg in
            PGListener(url: pg.url, logger: Logger(label: "pfc.listen"),
                       onNotification: { service.receiveJobNotification($0) },
                       onConnected: { reconnect in if reconnect { service.resynchronizeJobEvents() } })
        }
        listener?.start()

        config.metrics = service.metrics
        let server = HTTPServer(configuration: config, router: router, logger: Logger(label: "pfc.http"))
        do { try server.start() } catch let error as TLSError { throw ValidationError("TLS: \(error)") }
        service.startWorkers()
        let scheme = config.tls == nil ? "http" : "https"
        logger.info("serving", metadata: ["url": "\(scheme)://\(host):\(server.port)", "database": "\(store.backend.rawValue)", "echo": "\(echo)",
                                          "blas_core": "\(BLAS.coreName)", "sparse_kernels": "\(SparseRowKernels.bestVectorLevel)"])
        if let advice = BLAS.currentCoreAdvice { logger.warning("\(advice)") }
        let reloadSignal = config.tls == nil ? nil : server.reloadTLSOnSignal(SIGHUP)

        let signals = [SIGTERM, SIGINT].map { signo -> any DispatchSourceSignal in
            signal(signo, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signo, queue: ControlQueue.shared)
            source.setEventHandler {
                logger.info("signal received, shutting down", metadata: ["signal": "\(signo)"])
                // Both at once: the server's deadline starts now, and the workers' running job stops
                // at its next FISTA iteration (it runs again from its lease elsewhere).
                server.shutdown(deadline: config.shutdownDeadline)
                service.stopWorkers(deadline: .seconds(2))
            }
            source.activate()
            return source
        }
        server.waitUntilStopped()
        // Connections closed at the deadline at the latest, and that cancelled their handlers' compute:
        // give a handler still inside a transaction a moment to finish it (an interrupted one rolls back).
        if !server.waitForHandlers(timeout: .seconds(1)) {
            logger.warning("handlers still running after the shutdown deadline; closing the database under them")
        }
        signals.forEach { $0.cancel() }
        reloadSignal?.cancel()
        listener?.stop()
        store.close()
        logger.info("database closed; exiting")
        // The access log's last lines, bounded: a destination that takes nothing must not hold the exit.
        if let accessLogWriter, !accessLogWriter.flush(timeout: .seconds(2)) {
            logger.warning("access log not written out within 2 s; its last lines are lost")
        }
        // Exit now: a job's compute cut short may still be unwinding on its threads, and the libraries'
        // exit handlers (OpenBLAS's among them) would wait for it. Everything durable is written.
        fflush(nil)
        _exit(0)
    }

    /// The prediction batching flags, range-checked; predictions keep the handler deadline themselves.
    private func configurePredictions(_ c: inout ServiceConfiguration) throws {
        guard (1...10_000).contains(predictBatchRows) else { throw ValidationError("--predict-batch-rows must be in 1…10000") }
        guard predictBatchDelayMs.isFinite, (0...1000).contains(predictBatchDelayMs) else {
            throw ValidationError("--predict-batch-delay-ms must be in 0…1000 (0: no batching)")
        }
        guard (1...1_000_000).contains(predictQueueLimit) else { throw ValidationError("--predict-queue-limit must be in 1…1000000") }
        guard (1...256).contains(predictThreads) else { throw ValidationError("--predict-threads must be in 1…256") }
        c.predictBatchRows = predictBatchRows
        c.predictBatchDelayMilliseconds = predictBatchDelayMs
        c.predictQueueLimit = predictQueueLimit
        c.predictThreads = predictThreads
        guard (1_000_000...1_000_000_000_000_000).contains(maxPredictWork) else {
            throw ValidationError("--max-predict-work must be in 1000000…1000000000000000 multiply-adds")
        }
        c.limits.maxPredictWork = maxPredictWork
        guard (64...1_048_576).contains(maxWorkingMemoryMib) else { throw ValidationError("--max-working-memory-mib must be in 64…1048576") }
        c.limits.maxWorkingMemory = maxWorkingMemoryMib << 20
        c.predictTimeoutSeconds = handlerTimeoutSeconds
    }

    /// The rate and quota flags, range-checked.
    private func tenantLimits() throws -> TenantLimits {
        guard rateLimit.isFinite, (0...1_000_000).contains(rateLimit) else { throw ValidationError("--rate-limit must be in 0…1000000") }
        guard (1...10_000_000).contains(rateBurst) else { throw ValidationError("--rate-burst must be in 1…10000000") }
        guard quotaDatasetBytes >= 0, quotaModels >= 0, quotaJobs >= 0 else {
            throw ValidationError("--quota-dataset-bytes, --quota-models and --quota-jobs must be ≥ 0 (0: unlimited)")
        }
        var limits = TenantLimits()
        limits.requestsPerSecond = rateLimit
        limits.requestBurst = rateBurst
        limits.maxDatasetBytes = quotaDatasetBytes
        limits.maxModels = quotaModels
        limits.maxActiveJobs = quotaJobs
        return limits
    }

    /// glibc gives every thread that allocates its own arena (up to 8 per core), and the handler,
    /// worker and compute threads each keep theirs: under the soak, resident memory grew 20–40 % an
    /// hour with no leak, and flattened with 2 arenas (Benchmarks/soak/results-2026-12-01-rss-no-kills.md).
    /// `MALLOC_ARENA_MAX` in the environment still wins.
    static func boundMallocArenas() {
        #if canImport(Glibc)
        guard ProcessInfo.processInfo.environment["MALLOC_ARENA_MAX"] == nil else { return }
        let arenaMax: Int32 = -8  // M_ARENA_MAX in <malloc.h>, which the Glibc module does not export
        _ = glibcMallopt(arenaMax, Int32(max(2, ProcessInfo.processInfo.activeProcessorCount)))
        #endif
    }

    private func addEcho(_ router: inout Router) {
        // On the connection queue, as Hummingbird runs its handlers on the event loop: the body is
        // already read and the answer is a copy, so nothing here blocks.
        router.post("/echo", options: RouteOptions(maxBodyBytes: 1 << 20, execution: .connectionQueue)) { request, _ in
            guard request.headers["Content-Type"]?.lowercased().hasPrefix("application/json") ?? false else {
                throw HTTPError(.unsupportedMediaType, message: "Content-Type must be application/json")
            }
            return .json(try request.body.collect())
        }
    }
}

#if canImport(Glibc)
/// glibc's `int mallopt(int param, int value)`.
@_silgen_name("mallopt")
private func glibcMallopt(_ param: Int32, _ value: Int32) -> Int32
#endif
