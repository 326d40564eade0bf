// EvaluationRunner: the evaluation of a model version on a stored dataset (issue 16): accuracy, mean
// loss, per-class precision/recall/F1 and the confusion matrix, counted over the dataset in chunks.
// `ModelEvaluator` does the counting (shared by the route's answer-at-once path, the evaluate job and
// the continual-learning accuracy matrix of task jobs); `EvaluationRunner` runs an `evaluate` job on
// a worker thread, with heartbeats and cancellation between chunks, and stores the result with the
// job's completion in one transaction.
import Foundation
import Linalg
import Logging
import PFC
import Storage

/// An evaluate job's validated parameters: the version is resolved at submit time.
struct EvaluateJobParams: Codable, Sendable, Equatable {
    var datasetID: String
    var version: Int
}

/// An evaluate job's progress: rows evaluated so far.
struct EvaluationProgressDTO: Codable, Sendable, Equatable {
    var examplesDone: Int
    var examples: Int
    enum CodingKeys: String, CodingKey { case examples, examplesDone = "examples_done" }
}

/// One class's figures. Precision is null when nothing was predicted as the class, recall when the
/// class has no targets, F1 (2·TP / (2·TP + FP + FN)) when both counts are zero.
struct ClassMetricsDTO: Codable, Sendable, Equatable {
    var `class`: Int
    var support: Int
    var predicted: Int
    var precision: Double?
    var recall: Double?
    var f1: Double?
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(`class`, forKey: .class)
        try c.encode(support, forKey: .support)
        try c.encode(predicted, forKey: .predicted)
        try c.encode(precision, forKey: .precision)
        try c.encode(recall, forKey: .recall)
        try c.encode(f1, forKey: .f1)
    }
}

/// An evaluation as the API shows it (the 200 answer, the evaluate job's result and the stored row).
struct EvaluationDTO: Codable, Sendable, Equatable {
    var id: String
    var modelID: String
    var modelVersion: Int
    var datasetID: String
    var jobID: String?
    /// Examples in the dataset.
    var examples: Int
    /// What was scored: examples, or (per-step labels) the labelled steps.
    var targets: Int
    /// `per_example` (one label per example; the recurrent kinds score their last step) or `per_step`.
    var labels: String
    var accuracy: Double
    /// Mean loss over the targets, as training measures it (labels MSE, or cross-entropy for
    /// `loss: cross_entropy` models).
    var loss: Double
    /// Mean F1 over the classes that have targets.
    var macroF1: Double?
    var classes: [ClassMetricsDTO]
    /// confusion_matrix[true class][predicted class], output_dim × output_dim.
    var confusionMatrix: [[Int]]
    /// Per-step datasets: the accuracy at each step t = 0…T−1 (null where no step t is labelled).
    var stepAccuracy: [Double?]?
    var createdAt: String

    enum CodingKeys: String, CodingKey {
        case id, examples, targets, labels, accuracy, loss, classes
        case modelID = "model_id", modelVersion = "model_version", datasetID = "dataset_id", jobID = "job_id"
        case macroF1 = "macro_f1", confusionMatrix = "confusion_matrix", stepAccuracy = "step_accuracy", createdAt = "created_at"
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(modelID, forKey: .modelID)
        try c.encode(modelVersion, forKey: .modelVersion)
        try c.encode(datasetID, forKey: .datasetID)
        try c.encode(jobID, forKey: .jobID)
        try c.encode(examples, forKey: .examples)
        try c.encode(targets, forKey: .targets)
        try c.encode(labels, forKey: .labels)
        try c.encode(accuracy, forKey: .accuracy)
        try c.encode(loss, forKey: .loss)
        try c.encode(macroF1, forKey: .macroF1)
        try c.encode(classes, forKey: .classes)
        try c.encode(confusionMatrix, forKey: .confusionMatrix)
        try c.encodeIfPresent(stepAccuracy, forKey: .stepAccuracy)
        try c.encode(createdAt, forKey: .createdAt)
    }

    /// The stored row for this result.
    func record(tenantID: String) throws -> Evaluation {
        Evaluation(id: id, tenantID: tenantID, modelID: modelID, version: modelVersion, datasetID: datasetID, jobID: jobID,
                   accuracy: accuracy, loss: loss, examples: examples, result: try JSONColumn(self))
    }

    /// A stored evaluation's result (its columns when the document is unreadable).
    init(_ e: Evaluation) {
        if let d = try? e.result.decode(EvaluationDTO.self) { self = d; return }
        self.init(id: e.id, modelID: e.modelID, modelVersion: e.version, datasetID: e.datasetID, jobID: e.jobID, examples: e.examples,
                  targets: e.examples, labels: "per_example", accuracy: e.accuracy, loss: e.loss, macroF1: nil, classes: [],
                  confusionMatrix: [], stepAccuracy: nil, createdAt: ISO8601DateFormatter().string(from: e.createdAt))
    }

    init(id: String, modelID: String, modelVersion: Int, datasetID: String, jobID: String?, examples: Int, targets: Int, labels: String,
         accuracy: Double, loss: Double, macroF1: Double?, classes: [ClassMetricsDTO], confusionMatrix: [[Int]], stepAccuracy: [Double?]?,
         createdAt: String) {
        self.id = id; self.modelID = modelID; self.modelVersion = modelVersion; self.datasetID = datasetID; self.jobID = jobID
        self.examples = examples; self.targets = targets; self.labels = labels; self.accuracy = accuracy; self.loss = loss
        self.macroF1 = macroF1; self.classes = classes; self.confusionMatrix = confusionMatrix; self.stepAccuracy = stepAccuracy
        self.createdAt = createdAt
    }
}

/// A version's evaluation in a short form (listed with the version).
struct EvaluationSummaryDTO: Encodable {
    var e: Evaluation
    enum CodingKeys: String, CodingKey {
        case id, accuracy, loss, examples, datasetID = "dataset_id", jobID = "job_id", createdAt = "created_at"
    }
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(e.id, forKey: .id)
        try c.encode(e.datasetID, forKey: .datasetID)
        try c.encode(e.jobID, forKey: .jobID)
        try c.encode(e.accuracy, forKey: .accuracy)
        try c.encode(e.loss, forKey: .loss)
        try c.encode(e.examples, forKey: .examples)
        try c.encode(e.createdAt, forKey: .createdAt)
    }
}

/// Why an evaluation stopped before its end.
enum EvaluationStop: Error { case cancelled, leaseLost, shutdown, notFinite(Int) }

/// Counts an evaluation over a dataset in chunks of `chunkRows` (Trainer.evaluate's batches, so the
/// mean loss and accuracy are exactly what training reports on the same data).
struct ModelEvaluator {
    static let chunkRows = 500

    let network: any Network
    let data: LabeledDataset
    private let classes: Int
    private var confusion: [Int]
    private var lossSum: Double = 0
    private var weight: Double = 0
    private var stepRight: [Int]
    private var stepTotal: [Int]
    private(set) var examplesDone = 0

    init(network: any Network, data: LabeledDataset) {
        self.network = network
        self.data = data
        classes = network.architecture.outputDim
        confusion = [Int](repeating: 0, count: classes * classes)
        let t = data.labelsPerExample > 1 ? data.labelsPerExample : 0
        stepRight = [Int](repeating: 0, count: t)
        stepTotal = [Int](repeating: 0, count: t)
    }

    var finished: Bool { examplesDone >= data.count }

    /// Evaluates the next chunk; throws `.notFinite(row)` when the model's outputs are not finite numbers.
    mutating func step() throws {
        let start = examplesDone, end = min(data.count, start + Self.chunkRows)
        guard start < end else { return }
        let (x, labels) = data.batch(start..<end)
        if let seq = network as? SequenceClassifier {
            let targets = seq.targets(labels, batch: x.cols)
            let outputs = seq.predictSteps(x)
            // SequenceLosses.labelMSE: Σ (y − onehot)² / (C · n_t) at each labelled step, averaged over those steps.
            let active = targets.indices.filter { targets[$0].contains { $0 >= 0 } }
            var total: Double = 0, count = 0
            for t in active {
                let y = outputs[t], c = y.rows
                let n = targets[t].filter { $0 >= 0 }.count
                let pred = y.columnArgmax()
                var acc: Double = 0
                for (j, l) in targets[t].enumerated() where l >= 0 {
                    for i in 0..<c { let e = Double(y[i, j]) - (l == i ? 1 : 0); acc += e * e }
                    guard acc.isFinite else { throw EvaluationStop.notFinite(start + j) }
                    tally(truth: l, predicted: pred[j])
                    if !stepTotal.isEmpty { stepTotal[t] += 1; if pred[j] == l { stepRight[t] += 1 } }
                    count += 1
                }
                total += acc / Double(c * n) / Double(max(1, active.count))
            }
            lossSum += total * Double(count)
            weight += Double(count)
        } else {
            let out = network.predict(x)
            if let bad = (0..<out.cols).first(where: { j in out.column(j).contains { !$0.isFinite } }) { throw EvaluationStop.notFinite(start + bad) }
            let loss = network.architecture.loss == .crossEntropy
                ? Losses.softmaxCrossEntropy(out, labels: labels).loss
                : Losses.mse(out, Losses.oneHot(labels, classes: out.rows)).loss
            for (j, p) in out.columnArgmax().enumerated() { tally(truth: labels[j], predicted: p) }
            lossSum += Double(loss) * Double(end - start)
            weight += Double(end - start)
        }
        examplesDone = end
    }

    private mutating func tally(truth: Int, predicted: Int) {
        guard (0..<classes).contains(truth), (0..<classes).contains(predicted) else { return }
        confusion[truth * classes + predicted] += 1
    }

    /// The result so far (the whole evaluation once `finished`).
    func result(id: String = StoreID.make(), modelID: String, version: Int, datasetID: String, jobID: String?) -> EvaluationDTO {
        let c = classes
        let matrix = (0..<c).map { Array(confusion[($0 * c)..<(($0 + 1) * c)]) }
        var right = 0
        let perClass = (0..<c).map { k -> ClassMetricsDTO in
            let tp = matrix[k][k]
            let support = matrix[k].reduce(0, +)
            let predicted = (0..<c).reduce(0) { $0 + matrix[$1][k] }
            right += tp
            let fp = predicted - tp, fn = support - tp
            return ClassMetricsDTO(class: k, support: support, predicted: predicted,
                                   precision: predicted > 0 ? Double(tp) / Double(predicted) : nil,
                                   recall: support > 0 ? Double(tp) / Double(support) : nil,
                                   f1: 2 * tp + fp + fn > 0 ? Double(2 * tp) / Double(2 * tp + fp + fn) : nil)
        }
        let targets = confusion.reduce(0, +)
        let scored = perClass.filter { $0.support > 0 }.compactMap(\.f1)
        let perStep = data.labelsPerExample > 1
        return EvaluationDTO(
            id: id, modelID: modelID, modelVersion: version, datasetID: datasetID, jobID: jobID, examples: data.count, targets: targets,
            labels: perStep ? "per_step" : "per_example", accuracy: targets > 0 ? Double(right) / Double(targets) : 0,
            loss: weight > 0 ? lossSum / weight : 0, macroF1: scored.isEmpty ? nil : scored.reduce(0, +) / Double(scored.count),
            classes: perClass, confusionMatrix: matrix,
            stepAccuracy: perStep ? zip(stepRight, stepTotal).map { $1 > 0 ? Double($0) / Double($1) : nil } : nil,
            createdAt: ISO8601DateFormatter().string(from: Date()))
    }

    /// Runs to the end; `between` is called after every chunk and may throw to stop.
    mutating func run(between: (Int) throws -> Void = { _ in }) throws {
        while !finished {
            try step()
            try between(examplesDone)
        }
    }

    /// The message for outputs that are not finite at `row` (0-based).
    static func notFiniteMessage(row: Int, version: Int) -> String {
        "the model's outputs for row \(row + 1) of the dataset are not finite numbers "
            + "(inputs too large for this model, or version \(version) diverged in training)"
    }
}

/// Runs one `evaluate` job.
struct EvaluationRunner {
    let workers: JobWorkers
    let job: Job
    let owner: String
    let params: EvaluateJobParams

    var store: any Store { workers.store }
    var configuration: ServiceConfiguration { workers.configuration }

    func run() {
        workers.runChunkedJob(job, owner: owner, evaluate) { error in
            if case EvaluationStop.notFinite(let row) = error { return ModelEvaluator.notFiniteMessage(row: row, version: params.version) }
            return nil
        }
    }

    private func evaluate() throws {
        let tenant = job.tenantID
        guard let modelID = job.modelID else { throw JobError("job has no model") }
        _ = try store.model(id: modelID, tenantID: tenant)
        let network = try ModelFile.decode(Array(try store.modelWeights(modelID: modelID, version: params.version, tenantID: tenant)))
        let dataset = try store.dataset(id: params.datasetID, tenantID: tenant)
        let data = try DatasetBlobReader.load(from: store, dataset: dataset, tenantID: tenant, classes: network.architecture.outputDim,
                                              limits: workers.configuration.limits)
        let arch = network.architecture
        guard data.featureCount == arch.featureCount, data.classes <= arch.outputDim else {
            throw JobError("dataset \(dataset.id) (\(data.featureCount) features, \(data.classes) classes) does not fit the model "
                + "(\(arch.featureCount) features, \(arch.outputDim) classes)")
        }
        guard data.labelsPerExample == 1 || (arch.kind.isSequence && data.labelsPerExample == arch.sequenceLength) else {
            throw JobError("dataset \(dataset.id) is labelled per step; only a recurrent model of \(data.labelsPerExample) steps can be evaluated on it")
        }
        var evaluator = ModelEvaluator(network: network, data: data)
        var heartbeat = ChunkHeartbeat(workers: workers, jobID: job.id, owner: owner)
        try evaluator.run { done throws in
            try heartbeat.beat(force: done == data.count) { try JSONColumn(EvaluationProgressDTO(examplesDone: done, examples: data.count)) }
        }
        // Compute cut short by shutdown (ComputeCancellation) must never be stored: the job is queued again.
        if workers.isStopping { throw EvaluationStop.shutdown }
        let result = evaluator.result(modelID: modelID, version: params.version, datasetID: dataset.id, jobID: job.id)
        let record = try result.record(tenantID: tenant)
        try store.transaction { s in
            try s.insert(record)
            try s.completeJob(id: job.id, owner: owner, result: try JSONColumn(result))
        }
        workers.logger.info("job succeeded", metadata: ["job": "\(job.id)", "accuracy": "\(result.accuracy)"])
    }
}
