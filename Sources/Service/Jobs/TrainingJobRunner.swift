// TrainingJobRunner: runs one train or task job. Load the base version (or resume from the job's
// checkpoint), train with heartbeats and checkpoints, then hand the new version to the
// VersionWriter, which records it with its ledger, components and the job's completion in one
// transaction. A train job and a task job differ only in their `TrainingPlan`: where the base
// version comes from, whether the window moves and K grows, and whether batches go to the ledger.
import Foundation
import HTTP
import Linalg
import Logging
import PFC
import Storage

/// A train or task job's parameters.
enum TrainingJob: Sendable {
    case train(TrainJobParams)
    case task(TaskJobParams)

    var datasetID: String {
        switch self {
        case .train(let p): return p.datasetID
        case .task(let p): return p.datasetID
        }
    }

    /// The training options as submitted.
    var options: TrainingOptions {
        switch self {
        case .train(let p): return p.options
        case .task(let p): return p.options
        }
    }

    /// Why the version this job writes exists.
    var reason: VersionReason {
        switch self {
        case .train: return .train
        case .task: return .task
        }
    }

    /// Tasks record every trained batch in the ledger (what forgetting reads, research/pfc.md §4).
    var recordsBatches: Bool {
        switch self {
        case .train: return false
        case .task: return true
        }
    }
}

/// What a train or task job keeps between attempts: the trainer's state, the version it trains
/// from and the ledger so far (the stored checkpoint document).
struct TrainingCheckpoint: Codable {
    var baseVersion: Int
    var trainer: TrainerState
    var records: [BatchRecord]
}

struct TrainingJobRunner {
    let workers: JobWorkers
    let job: Job
    let owner: String
    let params: TrainingJob

    var store: any Store { workers.store }
    var configuration: ServiceConfiguration { workers.configuration }

    enum Stop { case cancelled, leaseLost, shutdown, died, diverged(String) }

    /// What the callbacks of one run share.
    final class RunState {
        var records: [BatchRecord] = []
        var stop: Stop? = nil
        var lastBeat = ContinuousClock.now - .seconds(3600)
        var lastCheckpoint = ContinuousClock.now
        /// The last progress written (its position and sparsity carry into the final progress).
        var lastProgress: TrainingProgressDTO?
    }

    func run() {
        do {
            try train()
        } catch StoreError.leaseLost {
            workers.logger.warning("lost the lease of a job; another worker owns it now", metadata: ["job": "\(job.id)"])
        } catch {
            workers.end(job, owner: owner, after: error, message: (error as? HTTPError)?.message ?? "\(error)")
        }
    }

    /// The job's checkpoint, if it has a readable one. A store that cannot be read throws (the job
    /// goes back to the queue): only a checkpoint that does not decode starts the job over.
    private func storedCheckpoint() throws -> TrainingCheckpoint? {
        guard let stored = try store.checkpoint(jobID: job.id) else { return nil }
        do {
            return try JSONDecoder().decode(TrainingCheckpoint.self, from: stored.state)
        } catch {
            workers.logger.warning("the job's checkpoint is unreadable; starting from the beginning",
                                   metadata: ["job": "\(job.id)", "error": "\(error)"])
            return nil
        }
    }

    private func train() throws {
        let tenant = job.tenantID
        guard let modelID = job.modelID else { throw JobError("job has no model") }
        var checkpoint = try storedCheckpoint()
        let model = try store.model(id: modelID, tenantID: tenant)
        let spec = try JSONDecoder().decode(ModelSpec.self, from: Data(model.architecture.utf8))
        // A train job given `version` branches from it on purpose; every other one (continue_optimizer
        // too, with the statistics of the version it starts from) continues the version latest when it
        // starts, and is not stored when another version was written meanwhile (`VersionWriter`).
        let continuesLatest: Bool
        if case .train(let p) = params { continuesLatest = p.continuesLatest } else { continuesLatest = true }
        let base: ModelVersion
        if let c = checkpoint {
            base = try store.modelVersion(modelID: modelID, version: c.baseVersion, tenantID: tenant)
        } else if case .train(let p) = params, let v = p.baseVersion, !continuesLatest {
            base = try store.modelVersion(modelID: modelID, version: v, tenantID: tenant)
        } else {
            base = try store.latestModelVersion(modelID: modelID, tenantID: tenant)
        }
        if case .task(let p) = params, let list = p.evaluateOn {
            try Self.checkEvaluateOn(list, number: ContinualState(metrics: base.metrics).tasks + 1)
        }
        var network = try ModelFile.decode(Array(try store.modelWeights(modelID: modelID, version: base.version, tenantID: tenant)))
        let dataset = try store.dataset(id: params.datasetID, tenantID: tenant)
        // The dataset as the trainer holds it (twice over with a validation split), held to the limits
        // before it is read: they may have changed since the job was queued.
        let datasetBytes: Int
        do {
            datasetBytes = try configuration.limits.checkDatasetLoad(dataset, split: params.options.validationFraction > 0, what: "this job")
            // The tasks and ledger rows the model may hold (the version writer counts them again as it commits).
            if case .task(let p) = params {
                try configuration.limits.checkContinual(try store.continualUsage(modelID: modelID, tenantID: tenant),
                                                        adding: p.mostLedgerRows(datasetExamples: dataset.examples), what: "this task")
            }
        } catch let e as HTTPError {
            throw JobError(e.message)
        }
        let data = try DatasetBlobReader.load(from: store, dataset: dataset, tenantID: tenant, classes: spec.architecture.outputDim,
                                              limits: configuration.limits)
        var continual = ContinualState(metrics: base.metrics)

        var options: TrainingOptions
        var grewBy = 0
        switch params {
        case .train(let p):
            options = p.options
        case .task(let p):
            options = p.options
            // The window continues where the base version left it (§3.1).
            options.slidingWindow?.start = continual.nextWindowStart
            // A task whose window would run past K grows the model when asked (research/pfc.md §3
            // capacity rule). Growth is seeded, so a resumed attempt grows exactly as the first did.
            let trainer = Trainer(options: options)
            if let need = trainer.requiredBasis(trainingExamples: trainer.trainingExamples(fromDataSetOf: data.count)),
               need > network.architecture.basis {
                guard p.grow else {
                    throw JobError("the task's window needs K = \(need) basis columns but the model has \(network.architecture.basis); send \"grow\": true")
                }
                // Held to the creation limits here too: the limits may have changed since the job was queued.
                do { try configuration.limits.checkBasis(need, of: network.architecture, action: "growing for this task") } catch let e as HTTPError {
                    throw JobError(e.message)
                }
                grewBy = need - network.architecture.basis
                network = try BasisGrowth.appendColumns(to: network, count: grewBy, seed: options.seed &+ 0x6772)
            }
        }

        // The tape of one step, with the network this job trains (grown above, or changed since submit).
        do {
            try configuration.limits.checkTraining(batch: min(options.batchSize, data.count), of: network.architecture, what: "this job",
                                                   reserved: datasetBytes)
        } catch let e as HTTPError {
            throw JobError(e.message)
        }

        // A follow-on train job continues the optimizer statistics kept with its base version
        // (checked at submit; a checkpoint, when there is one, holds the statistics since then).
        var continuing: OptimizerState? = nil
        if case .train(let p) = params, p.continueOptimizer == true {
            guard let stored = try store.optimizerState(modelID: modelID, version: base.version, tenantID: tenant) else {
                throw JobError("version \(base.version) has no optimizer state to continue (continue_optimizer)")
            }
            do { continuing = try JSONDecoder().decode(OptimizerState.self, from: stored.state) } catch {
                throw JobError("the optimizer state kept with version \(base.version) is unreadable: \(error)")
            }
            if let kept = continuing?.kind, kept != options.optimizer.rawValue {
                throw JobError("continue_optimizer: version \(base.version) kept \(kept) statistics but this job uses "
                    + "\(options.optimizer.rawValue); send \"optimizer\": \"\(kept)\" or omit continue_optimizer")
            }
        }

        // §3.1: a task validates on its own split and on every earlier task's (kept by their versions).
        var earlier: EarlierValidation? = nil
        if case .task(let p) = params, p.validateOnEarlierTasks == true {
            earlier = try earlierTaskValidation(upTo: base.version, before: continual.tasks + 1, modelID: modelID, architecture: network.architecture)
        }

        let state = RunState()
        if let c = checkpoint { state.records = c.records }
        let resumedFrom = checkpoint.map { ResumePoint(epoch: $0.trainer.epoch, batch: $0.trainer.batch) }
        if let r = resumedFrom {
            workers.logger.info("job resumes from its checkpoint", metadata: ["job": "\(job.id)", "epoch": "\(r.epoch)", "batch": "\(r.batch)"])
        }
        let interval = Duration.milliseconds(Int(configuration.heartbeatSeconds * 1000))
        let every = configuration.checkpoints
        let checkpointing = every.epochs > 0 ? Trainer.Checkpointing(
            due: { epoch, _, endOfEpoch in
                if state.stop != nil { return false }
                if endOfEpoch && epoch % every.epochs == 0 { return true }
                return ContinuousClock.now - state.lastCheckpoint >= .milliseconds(Int(max(0, min(every.seconds, 1e9)) * 1000))
            },
            save: { trainer in saveCheckpoint(TrainingCheckpoint(baseVersion: base.version, trainer: trainer, records: state.records), state) }
        ) : nil

        let run = { (resume: TrainerState?, network: inout any Network) throws -> TrainingReport in
            try Trainer(options: options).train(&network, on: data, resumingFrom: resume, continuingOptimizer: continuing,
                                                alsoValidatingOn: earlier?.data, checkpointing: checkpointing,
                                                onStep: params.recordsBatches ? { state.records.append($0) } : nil) { p in
                workers.recordThroughput(p.examplesPerSecond)
                workers.sparsity.record(p.fista)
                if state.stop != nil { return .stop }
                if workers.isStopping { state.stop = .shutdown; return .stop }
                if !p.loss.isFinite {
                    state.stop = .diverged("training diverged: the loss became \(p.loss) in epoch \(p.epoch), batch \(p.batch) "
                        + "(try a smaller learning_rate); no model version was written")
                    return .stop
                }
                let now = ContinuousClock.now
                guard now - state.lastBeat >= interval || p.batch == p.batches else { return .proceed }
                state.lastBeat = now
                do {
                    let dto = TrainingProgressDTO(p, resumedFrom: resumedFrom)
                    state.lastProgress = dto
                    let progress = try JSONColumn(dto)
                    if try store.heartbeat(jobID: job.id, owner: owner, progress: progress, leaseDuration: configuration.leaseSeconds) == .cancelRequested {
                        state.stop = .cancelled
                        return .stop
                    }
                } catch StoreError.leaseLost {
                    state.stop = .leaseLost
                    return .stop
                } catch {
                    workers.logger.warning("heartbeat failed; continuing", metadata: ["job": "\(job.id)", "error": "\(error)"])
                }
                return .proceed
            }
        }
        let report: TrainingReport
        do {
            let start = network
            do { report = try run(checkpoint?.trainer, &network) } catch let e as CheckpointError {
                // No checkpoint: the continued optimizer state is what did not fit (it cannot, unless the model changed).
                guard checkpoint != nil else { throw JobError("continue_optimizer: \(e)") }
                // A checkpoint that does not fit this run (it cannot, unless the code changed): start over.
                workers.logger.warning("the job's checkpoint does not fit; starting from the beginning",
                                       metadata: ["job": "\(job.id)", "error": "\(e)"])
                checkpoint = nil
                state.records = []
                network = start
                report = try run(nil, &network)
            }
        }
        switch state.stop {
        case .cancelled:
            try store.finishCancelledJob(id: job.id, owner: owner)
            return
        case .shutdown:
            workers.release(job, owner: owner)  // queued again at once; the next start resumes it from its checkpoint
            return
        case .leaseLost, .died:
            return // the lease expires and a replica resumes the job from its last checkpoint
        case .diverged(let why):
            throw JobError(why)
        case nil:
            break
        }
        if let problem = nonFiniteProblem(network) {
            throw JobError("training diverged: \(problem) (try a smaller learning_rate); no model version was written")
        }
        // Slip 6: the job's last progress is the last epoch's (validation included, named by `last`),
        // so the end event shows it beside the result's `best_epoch`, the epoch the version keeps.
        if let lastEpoch = report.history.last, !workers.isStopping {
            let final = TrainingProgressDTO(finishedWith: lastEpoch, epochs: options.epochs, previous: state.lastProgress, resumedFrom: resumedFrom)
            if try store.heartbeat(jobID: job.id, owner: owner, progress: try JSONColumn(final), leaseDuration: configuration.leaseSeconds) == .cancelRequested {
                try store.finishCancelledJob(id: job.id, owner: owner)
                return
            }
        }

        var metrics = VersionMetrics(report: report, datasetID: dataset.id)
        if let shape = dataset.imageShape.flatMap({ try? JSONDecoder().decode([Int].self, from: Data($0.utf8)) }) {
            continual.imageShape = shape  // carried into the metrics below, and by later forgets
        }
        var ledger: [LedgerBatch] = []
        var rowEvaluations: [EvaluationDTO] = []
        if case .task(let task) = params {
            continual.tasks += 1
            continual.nextWindowStart = report.nextWindowStart ?? continual.nextWindowStart
            let kept = state.records.filter { !$0.skipped && $0.step < (report.keptSteps ?? Int.max) }
            // Without a window every column learnt from every batch: forgetting one resets them all.
            let everyColumn = Array(repeating: 0..<network.architecture.basis, count: network.architecture.kind.blockCount)
            ledger = kept.map { r in
                LedgerBatch(task: continual.tasks, epoch: r.epoch, batchIndex: r.batchIndex, rows: r.exampleIndices,
                            windows: r.windows.isEmpty ? everyColumn : r.windows, datasetID: dataset.id)
            }
            metrics.task = continual.tasks
            metrics.taskName = task.name
            metrics.grewBy = grewBy
            metrics.batches = ledger.count
            metrics.windowColumns = report.windowColumns.map { [$0.lowerBound, $0.upperBound] }
                ?? (options.slidingWindow == nil ? [0, network.architecture.basis] : nil)
            // This task's split, for the tasks after it; and what the kept epoch was validated on.
            let trainer = Trainer(options: options)
            if options.validationFraction > 0 && data.count >= 2 {
                metrics.validationFraction = options.validationFraction
                metrics.validationSeed = options.seed
            }
            let own = data.count - trainer.trainingExamples(fromDataSetOf: data.count)
            metrics.validationExamples = own + (earlier?.data.count ?? 0)
            if let e = earlier { metrics.validatedOnTasks = e.tasks }
            // Issue 17: row i of the accuracy matrix R, the new weights on every task's evaluation set.
            metrics.evaluationDatasetID = task.evaluationDatasetID ?? task.evaluateOn?.last
            let sets = try evaluationSets(task, number: continual.tasks, modelID: modelID)
            if sets.contains(where: { $0 != nil }) {
                var row: [Double?] = []
                for id in sets {
                    let e: EvaluationDTO?
                    do { e = try id.flatMap { try evaluate(network, on: $0, modelID: modelID) } } catch EvaluationStop.cancelled {
                        try store.finishCancelledJob(id: job.id, owner: owner)
                        return
                    }
                    row.append(e?.accuracy)
                    if let e { rowEvaluations.append(e) }
                }
                metrics.evaluatedOn = sets
                metrics.accuracyRow = row
            }
        }
        let trained = Set(ledger.flatMap { $0.windows.flatMap { Array($0) } })
        continual.resetColumns.removeAll(where: trained.contains) // retrained columns carry knowledge again
        continual.carry(into: &metrics)
        let usage = Self.meanActivations(network, data: data)
        // Compute cut short by shutdown (ComputeCancellation) must never be stored: the job runs again.
        if workers.isStopping { workers.release(job, owner: owner); return }
        try VersionWriter(store: store).commit(VersionCommit(
            modelID: modelID, tenantID: tenant, parentVersion: base.version, reason: params.reason,
            network: network, metrics: metrics, ledger: ledger,
            components: usage.isEmpty ? .none : .measured(meanActivations: usage, trained: trained, reset: Set(continual.resetColumns),
                                                          provenance: ComponentProvenance(jobID: job.id, datasetID: dataset.id, task: continual.tasks)),
            grownSpec: grewBy > 0 ? ModelSpec(architecture: network.architecture, seed: spec.seed) : nil,
            job: (job.id, owner),
            optimizerState: params.recordsBatches ? nil : report.optimizerState,
            requiresLatestParent: continuesLatest,
            continualLimits: configuration.limits,
            extra: rowEvaluations.isEmpty ? nil : { s, v in
                // The evaluations behind R's row, listed with the version like POST …/evaluate's.
                for var e in rowEvaluations {
                    e.modelVersion = v.version
                    try s.insert(try e.record(tenantID: tenant))
                }
            }))
        workers.logger.info("job succeeded", metadata: ["job": "\(job.id)", "accuracy": "\(report.validationAccuracy ?? report.trainAccuracy)"])
    }

    /// The model's task versions, oldest first, with their metrics (read page by page; version rows
    /// carry no weights, so even thousands of tasks stay small).
    private func taskVersions(modelID: String) throws -> [(version: Int, metrics: VersionMetrics)] {
        var result: [(version: Int, metrics: VersionMetrics)] = []
        var offset = 0
        while true {
            let page = try store.modelVersions(modelID: modelID, tenantID: job.tenantID, reason: .task,
                                               page: PageRequest(limit: 1000, offset: offset))
            result += page.items.map { ($0.version, VersionMetrics(column: $0.metrics)) }
            guard let next = page.nextOffset else { return result }
            offset = next
        }
    }

    /// Earlier tasks' validation rows (§3.1) and the tasks they came from.
    struct EarlierValidation {
        var data: LabeledDataset
        var tasks: [Int]
    }

    /// The validation splits of tasks 1…`before`−1 as their versions (up to `version`) recorded
    /// them, recomputed from each task's dataset, fraction and seed. A task without a split (streamed,
    /// or `validation_fraction` 0) or whose dataset is gone or no longer fits is left out. More than
    /// `limits.maxEarlierTaskValidationExamples` rows in all: each task keeps its share, the first
    /// rows of its (shuffled) split. Nil when no earlier task has a split.
    private func earlierTaskValidation(upTo version: Int, before number: Int, modelID: String,
                                       architecture arch: Architecture) throws -> EarlierValidation? {
        guard number > 1 else { return nil }
        var splits: [Int: (version: Int, dataset: Dataset, fraction: Double, seed: UInt64)] = [:]
        for (v, m) in try taskVersions(modelID: modelID) where v <= version {
            guard let t = m.task, t < number, let id = m.datasetID, let f = m.validationFraction, let seed = m.validationSeed,
                  (splits[t]?.version ?? -1) < v else { continue }
            let ds: Dataset
            do { ds = try store.dataset(id: id, tenantID: job.tenantID) } catch StoreError.notFound { splits[t] = nil; continue }
            guard ds.features == arch.featureCount, ds.classes <= arch.outputDim, ds.labelsPerExample == 1, ds.examples >= 2 else {
                splits[t] = nil; continue
            }
            splits[t] = (v, ds, f, seed)
        }
        let tasks = splits.keys.sorted()
        let held = tasks.map { t -> Int in
            let s = splits[t]!
            return Int((Double(s.dataset.examples) * s.fraction).rounded())
        }
        let total = held.reduce(0, +), cap = configuration.limits.maxEarlierTaskValidationExamples
        guard total > 0, cap > 0 else { return nil }
        var parts: [LabeledDataset] = [], used: [Int] = []
        for (i, t) in tasks.enumerated() where held[i] > 0 {
            let s = splits[t]!
            let keep = total <= cap ? held[i] : Int(Double(held[i]) * Double(cap) / Double(total))
            guard keep > 0 else { continue }
            let data = try DatasetBlobReader.load(from: store, dataset: s.dataset, tenantID: job.tenantID, classes: arch.outputDim,
                                                  limits: configuration.limits)
            guard data.featureCount == arch.featureCount, data.labelsPerExample == 1 else { continue }
            let rows = data.splitIndices(fraction: s.fraction, seed: s.seed).second
            parts.append(data.subset(rows.prefix(keep)))
            used.append(t)
        }
        guard let joined = LabeledDataset.concatenating(parts) else { return nil }
        return EarlierValidation(data: joined, tasks: used)
    }

    /// `evaluate_on` names one dataset per task so far: checked before training starts and again at commit.
    static func checkEvaluateOn(_ list: [String], number: Int) throws {
        guard list.count == number else {
            throw JobError("evaluate_on names \(list.count) datasets but this job is task \(number) (the tasks before it are not "
                + "the ones counted when it was queued: one failed or was cancelled, or another ran first); give one per task so far, "
                + "this one included")
        }
    }

    /// The evaluation sets of tasks 1…`number` for this task's row of R: `evaluate_on` as given, or
    /// the `evaluation_dataset_id` each earlier task kept (nil where it named none) and this task's.
    private func evaluationSets(_ task: TaskJobParams, number: Int, modelID: String) throws -> [String?] {
        if let list = task.evaluateOn {
            try Self.checkEvaluateOn(list, number: number)
            return list
        }
        var kept: [Int: String] = [:]
        for (_, m) in try taskVersions(modelID: modelID) {
            if let t = m.task, let e = m.evaluationDatasetID { kept[t] = e }
        }
        return (1..<max(1, number)).map { kept[$0] } + [task.evaluationDatasetID]
    }

    /// `network`'s evaluation on dataset `id` (version filled in at commit); nil when the dataset is
    /// gone or no longer fits (checked at submit) or the outputs are not finite, or shutdown cut it short.
    private func evaluate(_ network: any Network, on id: String, modelID: String) throws -> EvaluationDTO? {
        let tenant = job.tenantID
        let dataset: Dataset
        do { dataset = try store.dataset(id: id, tenantID: tenant) } catch StoreError.notFound { return nil }
        let arch = network.architecture
        guard dataset.features == arch.featureCount, dataset.classes <= arch.outputDim, dataset.labelsPerExample == 1 else { return nil }
        let data = try DatasetBlobReader.load(from: store, dataset: dataset, tenantID: tenant, classes: arch.outputDim, limits: configuration.limits)
        guard data.featureCount == arch.featureCount, data.classes <= arch.outputDim, data.labelsPerExample == 1 else { return nil }
        var evaluator = ModelEvaluator(network: network, data: data)
        // The lease is kept (and a cancel request heard) between chunks, as while training.
        var heartbeat = ChunkHeartbeat(workers: workers, jobID: job.id, owner: owner, atOnce: false)
        do {
            try evaluator.run { _ in try heartbeat.beat() }
        } catch EvaluationStop.leaseLost {
            throw StoreError.leaseLost(jobID: job.id)
        } catch EvaluationStop.notFinite {
            return nil
        } catch EvaluationStop.shutdown {
            return nil  // nothing is stored: the caller sees isStopping
        }
        return evaluator.result(modelID: modelID, version: 0, datasetID: id, jobID: job.id)
    }

    /// Stores `checkpoint` as the job's; a lost lease stops the run, another failure only logs.
    private func saveCheckpoint(_ checkpoint: TrainingCheckpoint, _ state: RunState) {
        do {
            let document = try JSONEncoder().encode(checkpoint)
            try store.saveCheckpoint(JobCheckpoint(jobID: job.id, attempt: job.attempts, epoch: checkpoint.trainer.epoch,
                                                   batch: checkpoint.trainer.batch, state: document), owner: owner)
            state.lastCheckpoint = ContinuousClock.now
            if workers.dieAfterCheckpoint(jobID: job.id, epoch: checkpoint.trainer.epoch, batch: checkpoint.trainer.batch) {
                state.stop = .died
            }
        } catch StoreError.leaseLost {
            state.stop = .leaseLost
        } catch {
            workers.logger.warning("checkpoint failed; continuing", metadata: ["job": "\(job.id)", "error": "\(error)"])
        }
    }

    /// Mean activation of every basis vector of every block over `data` (empty for the MLP).
    static func meanActivations(_ network: any Network, data: LabeledDataset) -> [[Float]] {
        var means = ActivationMeans()
        var start = 0
        while start < data.count {
            let end = min(data.count, start + 500)
            means.add(network, inputs: data.batch(start..<end).0)
            start = end
        }
        return means.means
    }
}

/// Running mean activation of every basis vector of every PFC block over the inputs it was shown,
/// for the `.measured` component rows of `VersionCommit`. A streamed task, which keeps no dataset,
/// adds each mini-batch as it trains.
struct ActivationMeans {
    private var sums: [[Double]] = []
    private var count = 0

    /// Adds the activations of `inputs` (d × B, one example per column); a network without PFC blocks adds nothing.
    mutating func add(_ network: any Network, inputs x: Matrix) {
        let acts = network.blockActivations(x)
        if acts.isEmpty { return }
        if sums.isEmpty || sums.count != acts.count || zip(sums, acts).contains(where: { $0.count != $1.hT.cols }) {
            // First batch, or K grew since the last one: columns added later start from zero.
            sums = acts.enumerated().map { b, a in
                (0..<a.hT.cols).map { k in b < sums.count && k < sums[b].count ? sums[b][k] : 0 }
            }
        }
        for (b, a) in acts.enumerated() {
            for r in 0..<a.hT.rows { for k in 0..<a.hT.cols { sums[b][k] += Double(a.hT[r, k]) } }
        }
        count += acts[0].hT.rows  // hᵀ is B × K: one row per example
    }

    /// The means per block and column (empty when nothing was added).
    var means: [[Float]] { sums.map { $0.map { Float($0 / Double(max(1, count))) } } }
}
