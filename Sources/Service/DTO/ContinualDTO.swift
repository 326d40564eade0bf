// ContinualDTO: task increments (Sliding Learnable Window), the batch ledger and forgetting.
import Foundation
import PFC
import Storage

/// `POST /v1/models/{id}/tasks`. Validated once into `TaskJobParams` (`jobParams`), which the job stores.
struct TaskRequest: Decodable, Equatable {
    var name: String
    var datasetID: String
    var epochs = 10
    var batchSize = 200
    var learningRate: Float = 3e-4
    var weightDecay: Float = 1e-4
    /// The learnable window's width; nil (JSON null): no window, every column learns (the naive
    /// fine-tuning baseline of research/pfc.md §3.1, "PFC with standard RMSprop").
    var window: Int? = 15
    var slide = 0.25
    var grow = false
    var deterministic = false
    var validationFraction = 0.15
    var earlyStopping: Int? = 5
    var seed: UInt64 = 0
    /// Continual-learning metrics (issue 17): the evaluation set of every task so far, this one
    /// included (task j's accuracy after this task is R[i][j]); nil: the ones the tasks named.
    var evaluateOn: [String]?
    /// This task's own evaluation set, kept for the rows of later tasks.
    var evaluationDatasetID: String?
    /// Validate (early stopping, the kept epoch) on this task's split and every earlier task's, as
    /// research/pfc.md §3.1; false: on this task's split only.
    var validateOnEarlierTasks = true
    /// Batch indices (0-based, within every epoch) that advance the window without training
    /// (research/pfc.md §4's `step_without_update`): the unlearning experiment's retrained upper bound.
    var skipBatches: [Int]?

    enum CodingKeys: String, CodingKey {
        case name, epochs, window, slide, grow, deterministic, seed
        case datasetID = "dataset_id", batchSize = "batch_size", learningRate = "learning_rate", weightDecay = "weight_decay"
        case validationFraction = "validation_fraction", earlyStopping = "early_stopping", patience
        case evaluateOn = "evaluate_on", evaluationDatasetID = "evaluation_dataset_id"
        case validateOnEarlierTasks = "validate_on_earlier_tasks", skipBatches = "skip_batches"
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        datasetID = try c.decode(String.self, forKey: .datasetID)
        epochs = try c.decodeIfPresent(Int.self, forKey: .epochs) ?? epochs
        batchSize = try c.decodeIfPresent(Int.self, forKey: .batchSize) ?? batchSize
        learningRate = try c.decodeIfPresent(Float.self, forKey: .learningRate) ?? learningRate
        weightDecay = try c.decodeIfPresent(Float.self, forKey: .weightDecay) ?? weightDecay
        if c.contains(.window) { window = try c.decodeIfPresent(Int.self, forKey: .window) }
        slide = try c.decodeIfPresent(Double.self, forKey: .slide) ?? slide
        grow = try c.decodeIfPresent(Bool.self, forKey: .grow) ?? grow
        deterministic = try c.decodeIfPresent(Bool.self, forKey: .deterministic) ?? deterministic
        validationFraction = try c.decodeIfPresent(Double.self, forKey: .validationFraction) ?? validationFraction
        if c.contains(.earlyStopping) { earlyStopping = try c.decodeIfPresent(Int.self, forKey: .earlyStopping) }
        earlyStopping = try EarlyStoppingField.merge(earlyStopping: earlyStopping, given: c.contains(.earlyStopping),
                                                     patience: try c.decodeIfPresent(Int.self, forKey: .patience))
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? seed
        evaluateOn = try c.decodeIfPresent([String].self, forKey: .evaluateOn)
        evaluationDatasetID = try c.decodeIfPresent(String.self, forKey: .evaluationDatasetID)
        validateOnEarlierTasks = try c.decodeIfPresent(Bool.self, forKey: .validateOnEarlierTasks) ?? validateOnEarlierTasks
        skipBatches = try c.decodeIfPresent([Int].self, forKey: .skipBatches)
    }

    /// The trainer options of this task, the window starting at `start` (where the last task left it).
    func trainingOptions(limits: ServiceLimits, start: Double) throws -> TrainingOptions {
        var t = TrainRequest(datasetID: datasetID)
        t.epochs = epochs; t.batchSize = batchSize; t.learningRate = learningRate; t.weightDecay = weightDecay
        t.validationFraction = validationFraction; t.earlyStopping = earlyStopping; t.seed = seed
        var o = try t.trainingOptions(limits: limits)
        if let skip = skipBatches {
            guard window != nil else {
                throw APIError.invalid("skip_batches needs the sliding window (it advances the window past those batches); this task has \"window\": null")
            }
            guard skip.count <= limits.maxSkipBatches else {
                throw APIError.invalid("skip_batches lists \(skip.count) batches; the limit max_skip_batches is \(limits.maxSkipBatches)")
            }
        }
        guard let window else {
            // No window: RMSprop on every column, as POST …/train would; a fixed order when deterministic.
            o.shuffle = !deterministic
            return o
        }
        guard (1...limits.maxBasis).contains(window) else { throw APIError.invalid("window must be in 1…\(limits.maxBasis), or null for no window") }
        guard slide.isFinite, slide >= 0, slide <= Double(limits.maxBasis) else {
            throw APIError.invalid("slide must be a number in 0…\(limits.maxBasis)")
        }
        let schedule = SlidingWindowSchedule(width: window, slide: slide, start: start, deterministic: deterministic,
                                             skipBatches: Set(skipBatches ?? []))
        if let problem = schedule.validationProblem() { throw APIError.invalid(problem) }
        o.slidingWindow = schedule
        return o
    }

    /// The job's parameters: this request validated, the window starting at `start`.
    func jobParams(limits: ServiceLimits, start: Double) throws -> TaskJobParams {
        TaskJobParams(name: try DatasetUpload.validName(name), datasetID: datasetID,
                      options: try trainingOptions(limits: limits, start: start), grow: grow,
                      evaluateOn: evaluateOn, evaluationDatasetID: evaluationDatasetID,
                      validateOnEarlierTasks: validateOnEarlierTasks)
    }
}

/// What a forget wrote into its version's metrics.
struct ForgetRecord: Codable, Sendable, Equatable {
    struct Selector: Codable, Sendable, Equatable {
        var batches: [String]
        var task: Int?
        var datasetID: String?
        enum CodingKeys: String, CodingKey { case batches, task, datasetID = "dataset_id" }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(batches, forKey: .batches)
            try c.encode(task, forKey: .task)
            try c.encode(datasetID, forKey: .datasetID)
        }
    }
    var tenantID: String
    var at: String
    var request: Selector
    var columns: [Int]
    enum CodingKeys: String, CodingKey { case at, request, columns, tenantID = "tenant_id" }
}

/// A model version's metrics: what training measured, where the sliding window and the task count
/// stand (carried from version to version), and what a forget did. Stored as the version's metrics
/// column; every field is optional so each writer sets its own.
struct VersionMetrics: Codable, Sendable, Equatable {
    // Training (train and task jobs).
    var trainAccuracy: Double?
    var finalLoss: Double?
    var epochsRun: Int?
    var bestEpoch: Int?
    var examplesPerSecond: Double?
    var seconds: Double?
    var stoppedEarly: Bool?
    var datasetID: String?
    var validationAccuracy: Double?
    var validationLoss: Double?
    // A task.
    var task: Int?
    var taskName: String?
    var grewBy: Int?
    var batches: Int?
    var windowColumns: [Int]?
    var streamedExamples: Int?
    // Carried forward by every version (ContinualState).
    var nextWindowStart: Double?
    var tasks: Int?
    var resetColumns: [Int]?
    var imageShape: [Int]?
    // A forget.
    var forget: ForgetRecord?
    var accuracyBefore: Double?
    var accuracyAfter: Double?
    // An import: the format of the uploaded file (pfc or safetensors).
    var importedFrom: String?
    // Training: every finished epoch (the learning curve).
    var history: [EpochSummary]?
    // A task's continual-learning metrics (issue 17): its own evaluation set, the sets of tasks
    // 1…i it was evaluated on, and row i of the accuracy matrix R (null where a task had no set).
    var evaluationDatasetID: String?
    var evaluatedOn: [String?]?
    var accuracyRow: [Double?]?
    // A task's validation split (research/pfc.md §3.1), so later tasks can validate on it too: the
    // fraction of `datasetID` held out and the seed of the split; the examples the kept epoch was
    // validated on, and the earlier tasks whose splits were among them.
    var validationFraction: Double?
    var validationSeed: UInt64?
    var validationExamples: Int?
    var validatedOnTasks: [Int]?

    init() {}

    enum CodingKeys: String, CodingKey {
        case seconds, task, batches, tasks, forget
        case trainAccuracy = "train_accuracy", finalLoss = "final_loss", epochsRun = "epochs_run", bestEpoch = "best_epoch"
        case examplesPerSecond = "examples_per_second", stoppedEarly = "stopped_early", datasetID = "dataset_id"
        case validationAccuracy = "validation_accuracy", validationLoss = "validation_loss"
        case taskName = "task_name", grewBy = "grew_by", windowColumns = "window_columns", streamedExamples = "streamed_examples"
        case nextWindowStart = "next_window_start", resetColumns = "reset_columns", imageShape = "image_shape"
        case accuracyBefore = "accuracy_before", accuracyAfter = "accuracy_after", importedFrom = "imported_from", history
        case evaluationDatasetID = "evaluation_dataset_id", evaluatedOn = "evaluated_on", accuracyRow = "accuracy_row"
        case validationFraction = "validation_fraction", validationSeed = "validation_seed"
        case validationExamples = "validation_examples", validatedOnTasks = "validated_on_tasks"
    }

    /// Lenient: a field of another type (older versions wrote whole numbers as doubles) reads as absent
    /// rather than failing the whole version.
    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func int(_ k: CodingKeys) -> Int? {
            (try? c.decodeIfPresent(Int.self, forKey: k)) ?? (try? c.decodeIfPresent(Double.self, forKey: k)).flatMap { $0.flatMap { Int(exactly: $0) } }
        }
        func ints(_ k: CodingKeys) -> [Int]? {
            (try? c.decodeIfPresent([Int].self, forKey: k)) ?? (try? c.decodeIfPresent([Double].self, forKey: k)).flatMap { $0?.compactMap { Int(exactly: $0) } }
        }
        func double(_ k: CodingKeys) -> Double? { (try? c.decodeIfPresent(Double.self, forKey: k)) ?? nil }
        trainAccuracy = double(.trainAccuracy); finalLoss = double(.finalLoss)
        epochsRun = int(.epochsRun); bestEpoch = int(.bestEpoch)
        examplesPerSecond = double(.examplesPerSecond); seconds = double(.seconds)
        stoppedEarly = (try? c.decodeIfPresent(Bool.self, forKey: .stoppedEarly)) ?? nil
        datasetID = (try? c.decodeIfPresent(String.self, forKey: .datasetID)) ?? nil
        validationAccuracy = double(.validationAccuracy); validationLoss = double(.validationLoss)
        task = int(.task); taskName = (try? c.decodeIfPresent(String.self, forKey: .taskName)) ?? nil
        grewBy = int(.grewBy); batches = int(.batches); windowColumns = ints(.windowColumns); streamedExamples = int(.streamedExamples)
        nextWindowStart = double(.nextWindowStart); tasks = int(.tasks); resetColumns = ints(.resetColumns)
        imageShape = ints(.imageShape).flatMap { s in s.count == 2 && s.allSatisfy({ (1...Int(Int32.max)).contains($0) }) ? s : nil }
        forget = (try? c.decodeIfPresent(ForgetRecord.self, forKey: .forget)) ?? nil
        accuracyBefore = double(.accuracyBefore); accuracyAfter = double(.accuracyAfter)
        importedFrom = (try? c.decodeIfPresent(String.self, forKey: .importedFrom)) ?? nil
        history = (try? c.decodeIfPresent([EpochSummary].self, forKey: .history)) ?? nil
        evaluationDatasetID = (try? c.decodeIfPresent(String.self, forKey: .evaluationDatasetID)) ?? nil
        evaluatedOn = (try? c.decodeIfPresent([String?].self, forKey: .evaluatedOn)) ?? nil
        accuracyRow = ((try? c.decodeIfPresent([Double?].self, forKey: .accuracyRow)) ?? nil).map { $0.map { $0.flatMap { $0.isFinite ? $0 : nil } } }
        validationFraction = double(.validationFraction).flatMap { $0 > 0 && $0 < 1 ? $0 : nil }
        validationSeed = (try? c.decodeIfPresent(UInt64.self, forKey: .validationSeed)) ?? nil
        validationExamples = int(.validationExamples); validatedOnTasks = ints(.validatedOnTasks)
    }

    /// The metrics of a training run (nil fields for what it did not measure).
    init(report: TrainingReport, datasetID: String) {
        func finite(_ v: Float?) -> Double? { v.flatMap { $0.isFinite ? Double($0) : nil } }
        trainAccuracy = finite(report.trainAccuracy); finalLoss = finite(report.finalLoss)
        epochsRun = report.epochsRun; bestEpoch = report.bestEpoch
        examplesPerSecond = report.examplesPerSecond.isFinite ? report.examplesPerSecond : 0
        seconds = report.seconds.isFinite ? report.seconds : 0
        stoppedEarly = report.stoppedEarly
        self.datasetID = datasetID
        validationAccuracy = finite(report.validationAccuracy); validationLoss = finite(report.validationLoss)
        history = report.history.isEmpty ? nil : report.history.map { e in
            var e = e
            if !e.trainLoss.isFinite { e.trainLoss = 0 }
            if let l = e.validationLoss, !l.isFinite { e.validationLoss = nil }
            if !e.examplesPerSecond.isFinite { e.examplesPerSecond = 0 }
            return e
        }
    }

    /// The stored metrics of a version (empty when unreadable).
    init(column: JSONColumn) { self = (try? column.decode(VersionMetrics.self)) ?? VersionMetrics() }
}

/// Where the sliding window and the task count stand after a model version (carried in its metrics).
struct ContinualState {
    var nextWindowStart: Double = 0
    var tasks: Int = 0
    var resetColumns: [Int] = []
    /// The image shape of the data that trained the version, kept by versions that train on no
    /// dataset (forgets, streamed tasks) so their component PNGs still render.
    var imageShape: [Int]?

    init(metrics: VersionMetrics) {
        nextWindowStart = metrics.nextWindowStart.flatMap { $0.isFinite && $0 >= 0 ? $0 : nil } ?? 0
        tasks = metrics.tasks ?? 0
        resetColumns = metrics.resetColumns ?? []
        imageShape = metrics.imageShape
    }

    init(metrics: JSONColumn) { self.init(metrics: VersionMetrics(column: metrics)) }

    /// Writes the fields every new version carries forward into `m`.
    func carry(into m: inout VersionMetrics) {
        m.nextWindowStart = nextWindowStart
        m.tasks = tasks
        m.resetColumns = resetColumns
        m.imageShape = imageShape ?? m.imageShape
    }

    /// The carried fields alone.
    var versionMetrics: VersionMetrics {
        var m = VersionMetrics()
        carry(into: &m)
        return m
    }
}

/// The batch ledger's compact example encoding: row indices as little-endian UInt32.
enum LedgerRows {
    static func encode(_ rows: [Int]) -> Data {
        var d = Data(capacity: rows.count * 4)
        for r in rows { withUnsafeBytes(of: UInt32(r).littleEndian) { d.append(contentsOf: $0) } }
        return d
    }

    static func decode(_ d: Data) -> [Int] {
        let b = [UInt8](d)
        var out: [Int] = []
        out.reserveCapacity(b.count / 4)
        var i = 0
        while i + 4 <= b.count {
            let v: UInt32 = UInt32(b[i]) | (UInt32(b[i + 1]) << 8) | (UInt32(b[i + 2]) << 16) | (UInt32(b[i + 3]) << 24)
            out.append(Int(v))
            i += 4
        }
        return out
    }

}

/// One ledger row as the API shows it.
struct LedgerEntryDTO: Encodable {
    var entry: LedgerEntry
    enum CodingKeys: String, CodingKey { case id, version, task, epoch, rows, windows, batchIndex = "batch_index", datasetID = "dataset_id" }
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(entry.id, forKey: .id)
        try c.encode(entry.version, forKey: .version)
        try c.encode(entry.task, forKey: .task)
        try c.encode(entry.epoch, forKey: .epoch)
        try c.encode(entry.batchIndex, forKey: .batchIndex)
        try c.encode(entry.datasetID, forKey: .datasetID)
        try c.encode(LedgerRows.decode(entry.examples), forKey: .rows)
        try c.encode(entry.windows, forKey: .windows)
    }
}

/// `POST /v1/models/{id}/forget`.
struct ForgetRequest: Codable, Sendable, Equatable {
    struct Examples: Codable, Sendable, Equatable {
        var datasetID: String
        var rows: [Int]
        enum CodingKeys: String, CodingKey { case rows, datasetID = "dataset_id" }
    }
    var batches: [String]?
    var task: Int?
    var datasetID: String?
    var examples: [Examples]?
    var dryRun: Bool?
    var evaluateOn: String?
    /// Held-out examples of the training distribution: the forget is verified by membership inference (issue 17).
    var referenceDatasetID: String?
    /// Run as a `forget` job even when its measurements are small enough to answer at once.
    var async: Bool?
    enum CodingKeys: String, CodingKey {
        case batches, task, examples, async, datasetID = "dataset_id", dryRun = "dry_run", evaluateOn = "evaluate_on"
        case referenceDatasetID = "reference_dataset_id"
    }
}

/// What a forget request did (or, for a dry run, would do).
struct ForgetResponse: Codable, Sendable {
    var modelVersion: Int
    var versionCreated: Bool
    var dryRun: Bool
    var batches: [String]
    var columnsReset: [Int]
    var alreadyReset: [Int]
    var collateralBatches: [String]
    var accuracyBefore: Float?
    var accuracyAfter: Float?
    /// The audit record written with the new version; nil when nothing was written.
    var auditID: String? = nil
    /// With `reference_dataset_id`: the membership-inference check before and after the reset.
    var verification: ForgetVerificationDTO? = nil
    enum CodingKeys: String, CodingKey {
        case batches, verification, auditID = "audit_id"
        case modelVersion = "model_version", versionCreated = "version_created", dryRun = "dry_run", columnsReset = "columns_reset"
        case alreadyReset = "already_reset", collateralBatches = "collateral_batches"
        case accuracyBefore = "accuracy_before", accuracyAfter = "accuracy_after"
    }
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(modelVersion, forKey: .modelVersion)
        try c.encode(versionCreated, forKey: .versionCreated)
        try c.encode(dryRun, forKey: .dryRun)
        try c.encode(batches, forKey: .batches)
        try c.encode(columnsReset, forKey: .columnsReset)
        try c.encode(alreadyReset, forKey: .alreadyReset)
        try c.encode(collateralBatches, forKey: .collateralBatches)
        try c.encode(accuracyBefore, forKey: .accuracyBefore)
        try c.encode(accuracyAfter, forKey: .accuracyAfter)
        try c.encode(auditID, forKey: .auditID)
        try c.encode(verification, forKey: .verification)
    }
}

extension ForgetRequest {
    /// The selector as stored in the audit record.
    var auditJSON: JSONValue {
        .object([
            "batches": batches.map { .array($0.map { .string($0) }) } ?? .null,
            "task": task.map { .number(Double($0)) } ?? .null,
            "dataset_id": datasetID.map { .string($0) } ?? .null,
            "examples": examples.map { list in .array(list.map { e in
                .object(["dataset_id": .string(e.datasetID), "rows": .array(e.rows.map { .number(Double($0)) })]) }) } ?? .null,
            "evaluate_on": evaluateOn.map { .string($0) } ?? .null,
            "reference_dataset_id": referenceDatasetID.map { .string($0) } ?? .null,
        ])
    }
}

/// A forget audit as `GET …/forgets` lists it.
struct ForgetAuditDTO: Encodable {
    var audit: ForgetAudit
    enum CodingKeys: String, CodingKey {
        case id, version, request, batches, modelID = "model_id", columnsReset = "columns_reset", createdAt = "created_at"
        case accuracyBefore = "accuracy_before", accuracyAfter = "accuracy_after", verification
    }
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(audit.verification.flatMap { try? JSONDecoder().decode(ForgetVerificationDTO.self, from: Data($0.utf8)) }, forKey: .verification)
        func json(_ text: String) -> JSONValue { (try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))) ?? .null }
        try c.encode(audit.id, forKey: .id)
        try c.encode(audit.modelID, forKey: .modelID)
        try c.encode(audit.version, forKey: .version)
        try c.encode(json(audit.request), forKey: .request)
        try c.encode(json(audit.batches), forKey: .batches)
        try c.encode(json(audit.columnsReset), forKey: .columnsReset)
        try c.encode(audit.accuracyBefore, forKey: .accuracyBefore)
        try c.encode(audit.accuracyAfter, forKey: .accuracyAfter)
        try c.encode(audit.createdAt, forKey: .createdAt)
    }
}

/// One task of a model as `GET …/tasks` lists it.
struct TaskDTO: Encodable {
    var task: Int
    var name: String
    var modelVersion: Int
    var datasetID: String?
    var columns: [Int]?
    var grewBy: Int
    var metrics: VersionMetrics
    enum CodingKeys: String, CodingKey { case task, name, columns, metrics, modelVersion = "model_version", datasetID = "dataset_id", grewBy = "grew_by" }
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(task, forKey: .task)
        try c.encode(name, forKey: .name)
        try c.encode(modelVersion, forKey: .modelVersion)
        try c.encode(datasetID, forKey: .datasetID)
        try c.encode(columns, forKey: .columns)
        try c.encode(grewBy, forKey: .grewBy)
        try c.encode(metrics, forKey: .metrics)
    }
}

/// `GET /v1/models/{id}/tasks/metrics` (issue 17): the accuracy matrix R of the model's tasks and
/// the continual-learning figures of Avalanche and GEM (Lopez-Paz & Ranzato 2017). R[i][j] is the
/// accuracy on task j's evaluation set right after task i (0-based here, tasks 1…T in the API);
/// null above the diagonal, where a task had no evaluation set, or for a streamed task (which
/// records no row). Figures skip null entries and are null when nothing is left to average.
struct TaskMetricsDTO: Encodable {
    struct TaskEntry: Encodable {
        var task: Int
        var modelVersion: Int
        var evaluationDatasetID: String?
        enum CodingKeys: String, CodingKey { case task, modelVersion = "model_version", evaluationDatasetID = "evaluation_dataset_id" }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(task, forKey: .task)
            try c.encode(modelVersion, forKey: .modelVersion)
            try c.encode(evaluationDatasetID, forKey: .evaluationDatasetID)
        }
    }
    var accuracyMatrix: [[Double?]]
    var averageAccuracy: Double?
    var backwardTransfer: Double?
    var forgetting: [Double?]
    var tasks: [TaskEntry]

    /// From the model's task versions (any order); nil when there are none.
    init?(taskVersions: [ModelVersion]) {
        var byTask: [Int: (ModelVersion, VersionMetrics)] = [:]
        for v in taskVersions {
            let m = VersionMetrics(column: v.metrics)
            guard let t = m.task, t >= 1 else { continue }
            if let seen = byTask[t], seen.0.version > v.version { continue }
            byTask[t] = (v, m)
        }
        guard !byTask.isEmpty else { return nil }
        let ordered = byTask.keys.sorted().map { byTask[$0]! }
        let n = ordered.count
        tasks = ordered.map { TaskEntry(task: $0.1.task!, modelVersion: $0.0.version, evaluationDatasetID: $0.1.evaluationDatasetID) }
        accuracyMatrix = ordered.enumerated().map { i, entry in
            let row = entry.1.accuracyRow ?? []
            return (0..<n).map { j in j <= i && j < row.count ? row[j] : nil }
        }
        (averageAccuracy, backwardTransfer, forgetting) = Self.figures(accuracyMatrix)
    }

    /// Average accuracy = mean_j R[T][j]; BWT = mean over j < T of (R[T][j] − R[j][j]);
    /// forgetting_j = max over l < T of R[l][j] − R[T][j] (null for the last task).
    static func figures(_ r: [[Double?]]) -> (Double?, Double?, [Double?]) {
        func mean(_ xs: [Double]) -> Double? { xs.isEmpty ? nil : xs.reduce(0, +) / Double(xs.count) }
        guard let last = r.last else { return (nil, nil, []) }
        let t = r.count - 1
        let average = mean(last.compactMap { $0 })
        let bwt = mean((0..<t).compactMap { j in last[j].flatMap { a in r[j][j].map { a - $0 } } })
        let forgetting: [Double?] = (0...t).map { j in
            guard j < t, let final = last[j] else { return nil }
            let earlier = (0..<t).compactMap { r[$0][j] }
            return earlier.max().map { $0 - final }
        }
        return (average, bwt, forgetting)
    }

    enum CodingKeys: String, CodingKey {
        case forgetting, tasks
        case accuracyMatrix = "accuracy_matrix", averageAccuracy = "average_accuracy", backwardTransfer = "backward_transfer"
    }
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(accuracyMatrix, forKey: .accuracyMatrix)
        try c.encode(averageAccuracy, forKey: .averageAccuracy)
        try c.encode(backwardTransfer, forKey: .backwardTransfer)
        try c.encode(forgetting, forKey: .forgetting)
        try c.encode(tasks, forKey: .tasks)
    }
}
