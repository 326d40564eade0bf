// ContinualDTO: task increments (Sliding Learnable Window), the batch ledger and forgetting.
import Foundation
import PFC
import Storage

/// `POST /v1/models/{id}/tasks`; stored as the job's params.
struct TaskRequest: Codable, Equatable {
    var name: String
    var datasetID: String
    var epochs = 10
    var batchSize = 200
    var learningRate: Float = 3e-4
    var weightDecay: Float = 1e-4
    var window = 15
    var slide = 0.25
    var grow = false
    var deterministic = false
    var validationFraction = 0.15
    var earlyStopping: Int? = 5
    var seed: UInt64 = 0

    enum CodingKeys: String, CodingKey {
        case name, epochs, window, slide, grow, deterministic, seed
        case datasetID = "dataset_id", batchSize = "batch_size", learningRate = "learning_rate", weightDecay = "weight_decay"
        case validationFraction = "validation_fraction", earlyStopping = "early_stopping"
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        datasetID = try c.decode(String.self, forKey: .datasetID)
        epochs = try c.decodeIfPresent(Int.self, forKey: .epochs) ?? epochs
        batchSize = try c.decodeIfPresent(Int.self, forKey: .batchSize) ?? batchSize
        learningRate = try c.decodeIfPresent(Float.self, forKey: .learningRate) ?? learningRate
        weightDecay = try c.decodeIfPresent(Float.self, forKey: .weightDecay) ?? weightDecay
        window = try c.decodeIfPresent(Int.self, forKey: .window) ?? window
        slide = try c.decodeIfPresent(Double.self, forKey: .slide) ?? slide
        grow = try c.decodeIfPresent(Bool.self, forKey: .grow) ?? grow
        deterministic = try c.decodeIfPresent(Bool.self, forKey: .deterministic) ?? deterministic
        validationFraction = try c.decodeIfPresent(Double.self, forKey: .validationFraction) ?? validationFraction
        if c.contains(.earlyStopping) { earlyStopping = try c.decodeIfPresent(Int.self, forKey: .earlyStopping) }
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? seed
    }

    /// Encodes every field, `early_stopping` as null when off (omitting it would bring the default back
    /// when the worker decodes the job's params).
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(datasetID, forKey: .datasetID)
        try c.encode(epochs, forKey: .epochs)
        try c.encode(batchSize, forKey: .batchSize)
        try c.encode(learningRate, forKey: .learningRate)
        try c.encode(weightDecay, forKey: .weightDecay)
        try c.encode(window, forKey: .window)
        try c.encode(slide, forKey: .slide)
        try c.encode(grow, forKey: .grow)
        try c.encode(deterministic, forKey: .deterministic)
        try c.encode(validationFraction, forKey: .validationFraction)
        try c.encode(earlyStopping, forKey: .earlyStopping)
        try c.encode(seed, forKey: .seed)
    }

    /// The trainer options of this task, the window starting at `start` (where the last task left it).
    func trainingOptions(limits: ServiceLimits, start: Double) throws -> TrainingOptions {
        var t = TrainRequest(datasetID: datasetID)
        t.epochs = epochs; t.batchSize = batchSize; t.learningRate = learningRate; t.weightDecay = weightDecay
        t.validationFraction = validationFraction; t.earlyStopping = earlyStopping; t.seed = seed
        var o = try t.trainingOptions(limits: limits)
        guard (1...limits.maxBasis).contains(window) else { throw APIError.invalid("window must be in 1…\(limits.maxBasis)") }
        guard slide.isFinite, slide >= 0, slide <= Double(limits.maxBasis) else {
            throw APIError.invalid("slide must be a number in 0…\(limits.maxBasis)")
        }
        let schedule = SlidingWindowSchedule(width: window, slide: slide, start: start, deterministic: deterministic)
        if let problem = schedule.validationProblem() { throw APIError.invalid(problem) }
        o.slidingWindow = schedule
        return o
    }
}

/// Where the sliding window and the task count stand after a model version (carried in its metrics).
struct ContinualState {
    var nextWindowStart: Double = 0
    var tasks: Int = 0
    var resetColumns: [Int] = []
    /// The image shape of the data that trained the version, kept by versions that train on no
    /// dataset (forgets, streamed tasks) so their component PNGs still render.
    var imageShape: [Int]?

    init(metrics: String) {
        guard case .object(let o)? = JSONValue.parse(metrics) else { return }
        imageShape = ImageShape.stored(o["image_shape"])
        if case .number(let n)? = o["next_window_start"] { nextWindowStart = n }
        if let n = o["tasks"]?.int { tasks = n }
        if case .array(let a)? = o["reset_columns"] { resetColumns = a.compactMap(\.int) }
    }

    /// The fields every new version carries forward.
    var metrics: [String: JSONValue] {
        var m: [String: JSONValue] = ["next_window_start": .number(nextWindowStart), "tasks": .number(Double(tasks)),
                                      "reset_columns": .array(resetColumns.map { .number(Double($0)) })]
        if let imageShape { m["image_shape"] = .array(imageShape.map { .number(Double($0)) }) }
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

    static func windows(_ text: String) -> [Range<Int>] {
        ((try? JSONDecoder().decode([[Int]].self, from: Data(text.utf8))) ?? []).compactMap { $0.count == 2 && $0[0] <= $0[1] ? $0[0]..<$0[1] : nil }
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
        try c.encode(LedgerRows.windows(entry.windows).map { [$0.lowerBound, $0.upperBound] }, forKey: .windows)
    }
}

/// `POST /v1/models/{id}/forget`.
struct ForgetRequest: Decodable {
    struct Examples: Decodable {
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
    enum CodingKeys: String, CodingKey {
        case batches, task, examples, datasetID = "dataset_id", dryRun = "dry_run", evaluateOn = "evaluate_on"
    }
}

/// What a forget request did (or, for a dry run, would do).
struct ForgetResponse: Encodable {
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
    enum CodingKeys: String, CodingKey {
        case batches, auditID = "audit_id"
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
        ])
    }
}

/// A forget audit as `GET …/forgets` lists it.
struct ForgetAuditDTO: Encodable {
    var audit: ForgetAudit
    enum CodingKeys: String, CodingKey {
        case id, version, request, batches, modelID = "model_id", columnsReset = "columns_reset", createdAt = "created_at"
        case accuracyBefore = "accuracy_before", accuracyAfter = "accuracy_after"
    }
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
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
    var metrics: JSONValue
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
