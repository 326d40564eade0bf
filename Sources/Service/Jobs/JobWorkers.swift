// JobWorkers: threads that claim jobs from the database queue and run them, plus lease reclaim.
import Dispatch
import Foundation
import Linalg
import Logging
import Storage
import Synchronization

/// A pool of worker threads (separate from the HTTP handler threads) that claim queued jobs with
/// a lease, keep it while they run (`LeaseKeeper`; the runners' heartbeats carry progress and hear
/// cancels), and reclaim jobs whose lease expired on any replica.
final class JobWorkers: Sendable {
    let store: any Store
    let configuration: ServiceConfiguration
    let logger: Logger
    private let stopping = Atomic<Bool>(false)
    private let running = Atomic<Int>(0)
    private let wakeup = DispatchSemaphore(value: 0)
    private let lastThroughput = Atomic<UInt64>(0)
    private let checkpointHook = Mutex<(@Sendable (_ jobID: String, _ epoch: Int, _ batch: Int) -> Bool)?>(nil)

    init(store: any Store, configuration: ServiceConfiguration, logger: Logger) {
        self.store = store
        self.configuration = configuration
        self.logger = logger
    }

    /// The FISTA sparsity of the last training step and prediction batch on this process, for `/metrics`.
    let sparsity = SparsityGauges()

    /// Training throughput of the last step run here (examples/s), for `/metrics`.
    var lastExamplesPerSecond: Double { Double(bitPattern: lastThroughput.load(ordering: .relaxed)) }

    func recordThroughput(_ eps: Double) { lastThroughput.store(eps.bitPattern, ordering: .relaxed) }

    /// Test hook: called after every stored checkpoint with its position (the next batch to run);
    /// answering true makes the worker drop the job there as if its process died (no further write:
    /// the lease expires and any worker resumes the job from that checkpoint).
    func onCheckpoint(_ hook: (@Sendable (_ jobID: String, _ epoch: Int, _ batch: Int) -> Bool)?) {
        checkpointHook.withLock { $0 = hook }
    }

    func dieAfterCheckpoint(jobID: String, epoch: Int, batch: Int) -> Bool {
        guard let hook = checkpointHook.withLock({ $0 }) else { return false }
        return hook(jobID, epoch, batch)
    }

    /// True once `stop` was called; running jobs stop at their next step.
    var isStopping: Bool { stopping.load(ordering: .relaxed) }

    /// Starts `configuration.workers` threads.
    func start() {
        stopping.store(false, ordering: .relaxed)
        for i in 0..<max(1, configuration.workers) {
            let owner = "\(configuration.instanceID)-w\(i)"
            running.add(1, ordering: .relaxed)
            let thread = Thread { [self] in
                ComputeThreads.lowerCurrentThreadPriority()  // training yields to the HTTP loops
                loop(owner: owner)
                running.subtract(1, ordering: .relaxed)
            }
            thread.name = "pfc-worker-\(i)"
            thread.start()
        }
    }

    /// Wakes idle workers (a job was queued or cancelled).
    func wake() { for _ in 0..<max(1, configuration.workers) { wakeup.signal() } }

    /// Stops claiming; waits up to `deadline` for the workers to finish their current step.
    func stop(deadline: Duration) {
        stopping.store(true, ordering: .relaxed)
        wake()
        let end = ContinuousClock.now + deadline
        while running.load(ordering: .relaxed) > 0 && ContinuousClock.now < end { Thread.sleep(forTimeInterval: 0.02) }
    }

    private func loop(owner: String) {
        // Shutdown cuts the running job's compute short at its next FISTA iteration; runners check
        // `isStopping` before they store anything, and the job runs again from its lease.
        let token = CancellationToken { [self] in isStopping }
        ComputeCancellation.run(token) { claimAndRun(owner: owner) }
    }

    /// Runs a claimed job by its kind; fails it when its kind or parameters are not ones this server runs.
    private func run(_ job: Job, owner: String) {
        let params: JobParams
        do { params = try JobParams.decode(job, limits: configuration.limits) } catch {
            logger.error("job failed", metadata: ["job": "\(job.id)", "error": "\(error)"])
            try? store.failJob(id: job.id, owner: owner, error: error.description)
            return
        }
        // The lease lasts while this thread runs the job, through phases that heartbeat no progress.
        let keeper = LeaseKeeper(store: store, jobID: job.id, owner: owner, leaseSeconds: configuration.leaseSeconds, logger: logger)
        defer { keeper.stop() }
        switch params {
        case .train(let p): TrainingJobRunner(workers: self, job: job, owner: owner, params: .train(p)).run()
        case .task(let p): TrainingJobRunner(workers: self, job: job, owner: owner, params: .task(p)).run()
        case .analysis(let p): AnalysisJobRunner(workers: self, job: job, owner: owner, params: p).run()
        case .evaluate(let p): EvaluationRunner(workers: self, job: job, owner: owner, params: p).run()
        case .forget(let p, _): ForgetRunner(workers: self, job: job, owner: owner, params: p).run()
        }
    }

    private func claimAndRun(owner: String) {
        while !isStopping {
            do {
                let reclaimed = try store.reclaimExpiredJobs()
                if !reclaimed.requeued.isEmpty || !reclaimed.failed.isEmpty {
                    logger.warning("reclaimed expired job leases", metadata: ["requeued": "\(reclaimed.requeued)", "failed": "\(reclaimed.failed)"])
                }
                // The kinds this server runs, a model's version-writing jobs one at a time, oldest
                // first. A job of another kind is left for a replica that runs it (a newer release
                // during a rolling upgrade) for `unknownKindGraceSeconds`, then claimed here and
                // failed with a clear error instead of waiting in the queue for ever.
                let known = JobKind.allCases.map(\.rawValue), serial = JobKind.oneAtATimePerModel.map(\.rawValue)
                if let job = try store.claimJob(owner: owner, leaseDuration: configuration.leaseSeconds, kinds: known, oneAtATimePerModel: serial)
                    ?? store.claimJob(owner: owner, leaseDuration: configuration.leaseSeconds, otherThan: known,
                                      queuedBefore: StoreClock.now().addingTimeInterval(-max(0, configuration.unknownKindGraceSeconds))) {
                    logger.info("job claimed", metadata: ["job": "\(job.id)", "kind": "\(job.kind)", "attempt": "\(job.attempts)"])
                    run(job, owner: owner)
                    continue
                }
            } catch {
                logger.error("job queue unavailable", metadata: ["error": "\(error)"])
            }
            _ = wakeup.wait(timeout: .now() + configuration.pollSeconds)
        }
    }
}
