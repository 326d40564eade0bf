// JobModel: the typed job model. Every job has a `JobKind`; its parameters are the *validated* value
// of that kind (the engine's `TrainingOptions` for train and task jobs), stored as they were
// validated at submit time and decoded, not re-validated, by the worker; its progress and result are
// typed too. Storage keeps them as `JSONColumn`s and never sees these types.
import Foundation
import HTTP
import Linalg
import PFC
import Storage

/// What a job does. A claimed job whose kind is not one of these fails (`JobParams.decode`).
enum JobKind: String, Codable, CaseIterable, Sendable {
    /// Train a model on a dataset (`POST /v1/models/{id}/train`).
    case train
    /// A continual-learning increment with the sliding learnable window (`POST /v1/models/{id}/tasks`).
    case task
    /// An NPEFF analysis or a coefficient fit.
    case analysis
    /// Evaluate a model version on a dataset (`POST /v1/models/{id}/evaluate`, issue 16).
    case evaluate
    /// A forget whose measurements (`evaluate_on`, `reference_dataset_id`) are too large to answer at once.
    case forget

    /// The kinds that write a model's next version: the queue runs them one at a time per model, in
    /// the order they were queued (`claimJob(oneAtATimePerModel:)`), so each continues the version
    /// the one before it wrote instead of failing with "model changed".
    static let oneAtATimePerModel: [JobKind] = [.train, .task, .forget]

    /// Train and task jobs store checkpoints and resume from them.
    var checkpoints: Bool { self == .train || self == .task }
}

/// A train job's validated parameters.
struct TrainJobParams: Codable, Sendable, Equatable {
    var datasetID: String
    /// Start from this version; nil: the latest when the job runs.
    var baseVersion: Int?
    var options: TrainingOptions
    /// Start the optimizer from the statistics kept with the version the job starts from, not from zero.
    var continueOptimizer: Bool? = nil
    /// The client named `version`: the job branches from it on purpose and is stored whatever was
    /// written meanwhile. False for jobs queued by earlier releases that pinned `baseVersion` only for
    /// `continue_optimizer`: they start from the latest version when they run, like every job without
    /// `version`, and fail when another is written before they are stored. Nil (jobs queued before
    /// it existed): whether `baseVersion` is set.
    var branches: Bool? = nil

    /// Whether the stored version must still be the model's latest when it commits.
    var continuesLatest: Bool { !(branches ?? (baseVersion != nil)) }
}

/// A task job's validated parameters. `options.slidingWindow` holds the validated schedule; its
/// `start` is where the window stood at submit time and is moved, when the job runs, to where the
/// job's base version left it (§3.1: the window keeps sliding across tasks).
struct TaskJobParams: Codable, Sendable, Equatable {
    var name: String
    var datasetID: String
    var options: TrainingOptions
    /// Append fresh columns when the window would run past K.
    var grow: Bool
    /// The evaluation sets of tasks 1…i (issue 17); nil: the tasks' own `evaluationDatasetID`s.
    var evaluateOn: [String]? = nil
    /// This task's evaluation set.
    var evaluationDatasetID: String? = nil
    /// Validate on every earlier task's split too (§3.1); nil (jobs queued before it existed): false.
    var validateOnEarlierTasks: Bool? = nil

    /// The most example rows this task can record in the ledger over a dataset of `examples` rows:
    /// every epoch lists each training row once (`max_ledger_rows_per_model`). Nil on overflow.
    func mostLedgerRows(datasetExamples examples: Int) -> Int? {
        CheckedSize.product(max(1, options.epochs), Trainer(options: options).trainingExamples(fromDataSetOf: examples))
    }
}

/// A forget job's parameters: the request as it was validated, and the version it was planned on
/// (the job fails with 409's message when another version was written since).
struct ForgetJobParams: Codable, Sendable, Equatable {
    var request: ForgetRequest
    var baseVersion: Int
}

/// A job's parameters, by kind.
enum JobParams: Sendable {
    case train(TrainJobParams)
    case task(TaskJobParams)
    case analysis(AnalysisJobParams)
    case evaluate(EvaluateJobParams)
    /// The dataset the forget job keeps on its row (its reference or evaluation set), if any.
    case forget(ForgetJobParams, datasetID: String?)

    var kind: JobKind {
        switch self {
        case .train: return .train
        case .task: return .task
        case .analysis: return .analysis
        case .evaluate: return .evaluate
        case .forget: return .forget
        }
    }

    /// The dataset the job reads (kept on the job row, so the dataset cannot be deleted meanwhile).
    var datasetID: String? {
        switch self {
        case .train(let p): return p.datasetID
        case .task(let p): return p.datasetID
        case .analysis(let p): return p.datasetID
        case .evaluate(let p): return p.datasetID
        case .forget(_, let id): return id
        }
    }

    func column() throws -> JSONColumn {
        switch self {
        case .train(let p): return try JSONColumn(p)
        case .task(let p): return try JSONColumn(p)
        case .analysis(let p): return try JSONColumn(p)
        case .evaluate(let p): return try JSONColumn(p)
        case .forget(let p, _): return try JSONColumn(p)
        }
    }

    /// The stored job's parameters; a clear `JobError` for a kind this server does not run or
    /// parameters that are not that kind's. Train and task jobs queued by a server from before the
    /// typed job model stored the request itself; those are validated here, against `limits`, once.
    static func decode(_ job: Job, limits: ServiceLimits) throws(JobError) -> JobParams {
        guard let kind = JobKind(rawValue: job.kind) else {
            throw JobError("unknown job kind \"\(job.kind)\": this server runs \(JobKind.allCases.map(\.rawValue).joined(separator: ", ")) jobs")
        }
        do {
            switch kind {
            case .train:
                if let p = try? job.params.decode(TrainJobParams.self) { return .train(p) }
                guard let legacy = try? JSONCoding.decode(TrainRequest.self, from: job.params.bytes) else {
                    return .train(try job.params.decode(TrainJobParams.self))  // throws the decoding error
                }
                return .train(try legacy.jobParams(limits: limits))
            case .task:
                if let p = try? job.params.decode(TaskJobParams.self) { return .task(p) }
                guard let legacy = try? JSONCoding.decode(TaskRequest.self, from: job.params.bytes) else {
                    return .task(try job.params.decode(TaskJobParams.self))
                }
                return .task(try legacy.jobParams(limits: limits, start: 0))  // the runner moves the window's start
            case .analysis: return .analysis(try job.params.decode(AnalysisJobParams.self))
            case .evaluate: return .evaluate(try job.params.decode(EvaluateJobParams.self))
            case .forget: return .forget(try job.params.decode(ForgetJobParams.self), datasetID: job.datasetID)
            }
        } catch let e as HTTPError {
            throw JobError("the parameters of this \(kind.rawValue) job are invalid: \(e.message)")
        } catch {
            throw JobError("the parameters of this \(kind.rawValue) job are unreadable: \(error)")
        }
    }
}

extension Job {
    /// A queued job of `params`' kind, holding exactly the validated `params`.
    init(tenantID: String, modelID: String?, params: JobParams) throws {
        self.init(tenantID: tenantID, kind: params.kind.rawValue, params: try params.column(), datasetID: params.datasetID, modelID: modelID)
    }

    /// The job's kind; nil for a kind this server does not know.
    var jobKind: JobKind? { JobKind(rawValue: kind) }
}

/// Where a resumed run continued: the epoch and batch of its first batch.
struct ResumePoint: Codable, Sendable, Equatable {
    var epoch: Int
    /// 0-based batch within `epoch` (0: the epoch's start).
    var batch: Int
}

/// Training progress as stored on the job and sent to clients (nulls spelled out, as openapi's
/// `Progress` requires them).
struct TrainingProgressDTO: Codable, Sendable, Equatable {
    var epoch: Int
    var epochs: Int
    var batch: Int
    var batches: Int
    var loss: Float
    var accuracy: Float
    var examplesPerSecond: Double
    var validationLoss: Float?
    var validationAccuracy: Float?
    /// Set when this attempt continued from a checkpoint.
    var resumedFrom: ResumePoint?
    /// PFC kinds: the fraction of code entries above the floor after each FISTA iteration in the last
    /// training pass (issue 14; the active-set engine pays for those only).
    var activeFraction: [Float]?
    /// The finished epoch `validationLoss`/`validationAccuracy` belong to (slip 6): while an epoch
    /// runs it is the one before; the job's final progress is the last epoch's. The result's
    /// `best_epoch` is the epoch the version keeps, whose validation figures its metrics show.
    var last: EpochValidation?

    init(_ p: TrainingProgress, resumedFrom: ResumePoint?) {
        epoch = p.epoch; epochs = p.epochs; batch = p.batch; batches = p.batches
        loss = p.loss.isFinite ? p.loss : 0
        accuracy = p.accuracy
        examplesPerSecond = p.examplesPerSecond.isFinite ? p.examplesPerSecond : 0
        validationLoss = p.validationLoss.flatMap { $0.isFinite ? $0 : nil }
        validationAccuracy = p.validationAccuracy
        self.resumedFrom = resumedFrom
        activeFraction = p.fista.map { $0.activeFraction.map { $0.isFinite ? $0 : 0 } }.flatMap { $0.isEmpty ? nil : $0 }
        // Validation runs after an epoch's last batch, so mid-epoch figures are the previous epoch's.
        if validationAccuracy != nil || validationLoss != nil, p.epoch > 1 {
            last = EpochValidation(epoch: p.epoch - 1, validationLoss: validationLoss, validationAccuracy: validationAccuracy)
        }
    }

    /// The progress a finished run ends with: `previous`'s position at the end of the last epoch,
    /// with that epoch's training and validation figures from the learning curve.
    init(finishedWith last: EpochSummary, epochs: Int, previous: TrainingProgressDTO?, resumedFrom: ResumePoint?) {
        epoch = last.epoch; self.epochs = epochs
        batches = previous?.batches ?? 0; batch = batches
        loss = last.trainLoss.isFinite ? last.trainLoss : 0
        accuracy = last.trainAccuracy.isFinite ? last.trainAccuracy : 0
        examplesPerSecond = last.examplesPerSecond.isFinite && last.examplesPerSecond > 0 ? last.examplesPerSecond : (previous?.examplesPerSecond ?? 0)
        validationLoss = last.validationLoss.flatMap { $0.isFinite ? $0 : nil }
        validationAccuracy = last.validationAccuracy
        self.resumedFrom = resumedFrom
        activeFraction = previous?.activeFraction
        if validationAccuracy != nil || validationLoss != nil {
            self.last = EpochValidation(epoch: last.epoch, validationLoss: validationLoss, validationAccuracy: validationAccuracy)
        }
    }

    enum CodingKeys: String, CodingKey {
        case epoch, epochs, batch, batches, loss, accuracy
        case examplesPerSecond = "examples_per_second", validationLoss = "validation_loss", validationAccuracy = "validation_accuracy"
        case resumedFrom = "resumed_from", activeFraction = "active_fraction", last
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(epoch, forKey: .epoch)
        try c.encode(epochs, forKey: .epochs)
        try c.encode(batch, forKey: .batch)
        try c.encode(batches, forKey: .batches)
        try c.encode(loss, forKey: .loss)
        try c.encode(accuracy, forKey: .accuracy)
        try c.encode(examplesPerSecond, forKey: .examplesPerSecond)
        try c.encode(validationLoss, forKey: .validationLoss)
        try c.encode(validationAccuracy, forKey: .validationAccuracy)
        try c.encodeIfPresent(resumedFrom, forKey: .resumedFrom)
        try c.encodeIfPresent(activeFraction, forKey: .activeFraction)
        try c.encode(last, forKey: .last)
    }
}

/// One epoch's validation figures, named by the epoch (slip 6: `last` in progress, `best_epoch`
/// and `last` in a training job's result).
struct EpochValidation: Codable, Sendable, Equatable {
    var epoch: Int
    var validationLoss: Float?
    var validationAccuracy: Float?
    enum CodingKeys: String, CodingKey { case epoch, validationLoss = "validation_loss", validationAccuracy = "validation_accuracy" }
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(epoch, forKey: .epoch)
        try c.encode(validationLoss, forKey: .validationLoss)
        try c.encode(validationAccuracy, forKey: .validationAccuracy)
    }

    init(epoch: Int, validationLoss: Float?, validationAccuracy: Float?) {
        self.epoch = epoch; self.validationLoss = validationLoss; self.validationAccuracy = validationAccuracy
    }

    init?(_ e: EpochSummary?) {
        guard let e else { return nil }
        self.init(epoch: e.epoch, validationLoss: e.validationLoss.flatMap { $0.isFinite ? $0 : nil }, validationAccuracy: e.validationAccuracy)
    }
}

/// A job's progress, by kind.
enum JobProgress: Encodable {
    case training(TrainingProgressDTO)
    case analysis(AnalysisProgressDTO)
    case evaluation(EvaluationProgressDTO)

    /// The stored progress of a job of `kind` (nil when there is none or it is unreadable).
    init?(kind: JobKind?, column: JSONColumn?) {
        guard let kind, let column else { return nil }
        switch kind {
        case .train, .task:
            guard let p = try? column.decode(TrainingProgressDTO.self) else { return nil }
            self = .training(p)
        case .analysis:
            guard let p = try? column.decode(AnalysisProgressDTO.self) else { return nil }
            self = .analysis(p)
        case .evaluate, .forget:
            guard let p = try? column.decode(EvaluationProgressDTO.self) else { return nil }
            self = .evaluation(p)
        }
    }

    func encode(to encoder: any Encoder) throws {
        switch self {
        case .training(let p): try p.encode(to: encoder)
        case .analysis(let p): try p.encode(to: encoder)
        case .evaluation(let p): try p.encode(to: encoder)
        }
    }
}

/// What a finished train or task job produced (the job's result).
struct TrainResult: Codable, Sendable {
    var modelVersion: Int
    var metrics: VersionMetrics
    enum CodingKeys: String, CodingKey { case modelVersion = "model_version", metrics, bestEpoch = "best_epoch", last }

    init(modelVersion: Int, metrics: VersionMetrics) { self.modelVersion = modelVersion; self.metrics = metrics }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        modelVersion = try c.decode(Int.self, forKey: .modelVersion)
        metrics = try c.decode(VersionMetrics.self, forKey: .metrics)
    }

    /// Slip 6, from the learning curve: `best_epoch` is the epoch the version keeps (its validation
    /// figures are the metrics' `validation_*`), `last` the last epoch run (the final progress's).
    /// Null without a learning curve (forgets, imports, results stored before it).
    var bestEpoch: EpochValidation? {
        guard let history = metrics.history, let best = metrics.bestEpoch else { return nil }
        return EpochValidation(history.first { $0.epoch == best })
    }
    var last: EpochValidation? { EpochValidation(metrics.history?.last) }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(modelVersion, forKey: .modelVersion)
        try c.encode(metrics, forKey: .metrics)
        try c.encode(bestEpoch, forKey: .bestEpoch)
        try c.encode(last, forKey: .last)
    }
}

/// A job's result, by kind.
enum JobResult: Encodable {
    case training(TrainResult)
    case analysis(AnalysisJobResult)
    case evaluation(EvaluationDTO)
    case forget(ForgetResponse)

    init?(kind: JobKind?, column: JSONColumn?) {
        guard let kind, let column else { return nil }
        switch kind {
        case .train, .task:
            guard let r = try? column.decode(TrainResult.self) else { return nil }
            self = .training(r)
        case .analysis:
            guard let r = try? column.decode(AnalysisJobResult.self) else { return nil }
            self = .analysis(r)
        case .evaluate:
            guard let r = try? column.decode(EvaluationDTO.self) else { return nil }
            self = .evaluation(r)
        case .forget:
            guard let r = try? column.decode(ForgetResponse.self) else { return nil }
            self = .forget(r)
        }
    }

    func encode(to encoder: any Encoder) throws {
        switch self {
        case .training(let r): try r.encode(to: encoder)
        case .analysis(let r): try r.encode(to: encoder)
        case .evaluation(let r): try r.encode(to: encoder)
        case .forget(let r): try r.encode(to: encoder)
        }
    }
}

/// A job that cannot run as queued.
struct JobError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
