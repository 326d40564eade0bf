// JobDTO: training requests and jobs as the API shows them.
import Foundation
import PFC
import Storage

/// Early stopping in train and task requests: `early_stopping` (patience in epochs, null = off) or its
/// alias `patience` (0 = off). Training stops after that many epochs without improvement in validation
/// loss or accuracy (research/pfc.md §1.3) and the version keeps the best-validation-loss epoch.
enum EarlyStoppingField {
    static func merge(earlyStopping: Int?, given: Bool, patience: Int?) throws -> Int? {
        guard let patience else { return earlyStopping }
        guard patience >= 0 else { throw APIError.invalid("patience must be 0 (early stopping off) or a positive number of epochs") }
        let asEarlyStopping = patience == 0 ? nil : patience
        if given && earlyStopping != asEarlyStopping {
            throw APIError.invalid("patience and early_stopping disagree; give one of them")
        }
        return asEarlyStopping
    }
}

/// `POST /v1/models/{id}/train`. Validated once into `TrainJobParams` (`jobParams`), which the job stores.
struct TrainRequest: Decodable, Equatable {
    var datasetID: String
    var epochs: Int = 10
    var batchSize: Int = 200
    var learningRate: Float = 3e-4
    var weightDecay: Float = 1e-4
    var optimizer: OptimizerKind = .rmsprop
    var validationFraction: Double = 0.15
    var earlyStopping: Int? = 20
    var seed: UInt64 = 0
    var version: Int?
    /// Continue the optimizer statistics a train job kept with the base version (else zero statistics).
    var continueOptimizer = false

    enum CodingKeys: String, CodingKey {
        case epochs, optimizer, seed, version, continueOptimizer = "continue_optimizer"
        case datasetID = "dataset_id", batchSize = "batch_size", learningRate = "learning_rate", weightDecay = "weight_decay"
        case validationFraction = "validation_fraction", earlyStopping = "early_stopping", patience
    }

    init(datasetID: String) { self.datasetID = datasetID }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        datasetID = try c.decode(String.self, forKey: .datasetID)
        epochs = try c.decodeIfPresent(Int.self, forKey: .epochs) ?? epochs
        batchSize = try c.decodeIfPresent(Int.self, forKey: .batchSize) ?? batchSize
        learningRate = try c.decodeIfPresent(Float.self, forKey: .learningRate) ?? learningRate
        weightDecay = try c.decodeIfPresent(Float.self, forKey: .weightDecay) ?? weightDecay
        optimizer = try c.decodeIfPresent(OptimizerKind.self, forKey: .optimizer) ?? optimizer
        validationFraction = try c.decodeIfPresent(Double.self, forKey: .validationFraction) ?? validationFraction
        if c.contains(.earlyStopping) { earlyStopping = try c.decodeIfPresent(Int.self, forKey: .earlyStopping) }
        earlyStopping = try EarlyStoppingField.merge(earlyStopping: earlyStopping, given: c.contains(.earlyStopping),
                                                     patience: try c.decodeIfPresent(Int.self, forKey: .patience))
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? seed
        version = try c.decodeIfPresent(Int.self, forKey: .version)
        continueOptimizer = try c.decodeIfPresent(Bool.self, forKey: .continueOptimizer) ?? false
    }

    /// The trainer's options, or a message naming the bad field.
    func trainingOptions(limits: ServiceLimits) throws -> TrainingOptions {
        guard (1...limits.maxEpochs).contains(epochs) else { throw APIError.invalid("epochs must be in 1…\(limits.maxEpochs)") }
        guard (1...100_000).contains(batchSize) else { throw APIError.invalid("batch_size must be in 1…100000") }
        var o = TrainingOptions()
        o.epochs = epochs
        o.batchSize = batchSize
        o.learningRate = learningRate
        o.weightDecay = weightDecay
        o.optimizer = optimizer
        o.validationFraction = validationFraction
        o.earlyStoppingPatience = earlyStopping
        o.seed = seed
        if let problem = o.validationProblem() { throw APIError.invalid(problem) }
        return o
    }

    /// The job's parameters: this request validated.
    func jobParams(limits: ServiceLimits) throws -> TrainJobParams {
        TrainJobParams(datasetID: datasetID, baseVersion: version, options: try trainingOptions(limits: limits),
                       continueOptimizer: continueOptimizer ? true : nil)
    }
}


/// A job as the API shows it.
struct JobDTO: Encodable {
    var job: Job

    enum CodingKeys: String, CodingKey {
        case id, kind, state, progress, result, error, attempts
        case modelID = "model_id", datasetID = "dataset_id", cancelRequested = "cancel_requested"
        case createdAt = "created_at", startedAt = "started_at", finishedAt = "finished_at"
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(job.id, forKey: .id)
        try c.encode(job.kind, forKey: .kind)  // the stored name, also for a kind this server does not run
        try c.encode(job.state.rawValue, forKey: .state)
        try c.encode(job.modelID, forKey: .modelID)
        try c.encode(job.datasetID, forKey: .datasetID)
        try c.encode(JobProgress(kind: job.jobKind, column: job.progress), forKey: .progress)
        try c.encode(JobResult(kind: job.jobKind, column: job.result), forKey: .result)
        try c.encode(job.error, forKey: .error)
        try c.encode(job.attempts, forKey: .attempts)
        try c.encode(job.cancelRequested, forKey: .cancelRequested)
        try c.encode(job.createdAt, forKey: .createdAt)
        try c.encode(job.startedAt, forKey: .startedAt)
        try c.encode(job.finishedAt, forKey: .finishedAt)
    }
}

/// `POST /v1/models/{id}/predict`.
struct PredictRequest: Decodable {
    var rows: FlatOrNestedRows
    var version: Int?
    var top: Int?
    /// Recurrent kinds: also predict at every step (and explain each step by its own prediction).
    var everyStep: Bool?
    /// The inputs, flat: a nested [T][d] example is laid out step after step.
    var inputs: [[Float]] { rows.rows.map { $0.map(Float.init) } }
    enum CodingKeys: String, CodingKey { case version, top, rows = "inputs", everyStep = "every_step" }
}

/// One basis vector's share in a prediction.
struct ExplanationDTO: Encodable {
    var block: Int
    var component: Int
    var activation: Float
    var contribution: Float
}

/// The answer of `predict`.
struct PredictResponse: Encodable {
    var modelVersion: Int
    var predictions: [Int]
    var outputs: [[Float]]
    var explanations: [[ExplanationDTO]]
    /// With `every_step`: each example's predicted class at every step t = 0…T−1.
    var stepPredictions: [[Int]]?
    enum CodingKeys: String, CodingKey {
        case predictions, outputs, explanations, modelVersion = "model_version", stepPredictions = "step_predictions"
    }
}

/// One basis vector of a block.
struct ComponentDTO: Encodable {
    var block: Int
    var component: Int
    var wxNorm: Float
    var wyNorm: Float
    var meanActivation: Float?
    enum CodingKeys: String, CodingKey {
        case block, component, wxNorm = "wx_norm", wyNorm = "wy_norm", meanActivation = "mean_activation"
    }
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(block, forKey: .block)
        try c.encode(component, forKey: .component)
        try c.encode(wxNorm, forKey: .wxNorm)
        try c.encode(wyNorm, forKey: .wyNorm)
        try c.encode(meanActivation, forKey: .meanActivation)
    }
}

/// The answer of `GET …/components`.
struct ComponentListDTO: Encodable {
    var modelVersion: Int
    var block: Int
    var components: [ComponentDTO]
    enum CodingKeys: String, CodingKey { case block, components, modelVersion = "model_version" }
}
