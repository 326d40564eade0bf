// TaskStreamRoute: a continual-learning task whose examples arrive as an NDJSON request body;
// mini-batches train as they fill, and the response is the task's summary (research/pfc.md §3).
import Foundation
import HTTP
import Linalg
import PFC
import Storage

/// Query options of `POST /v1/models/{id}/tasks/stream`.
struct StreamTaskOptions {
    var name: String
    var batchSize = 50
    var learningRate: Float = 3e-4
    var weightDecay: Float = 1e-4
    var window = 15
    var slide = 0.25
    var grow = false

    init(_ request: Request) throws {
        name = try DatasetUpload.validName(request.queryValue("name"))
        func number<T: LosslessStringConvertible>(_ key: String, _ fallback: T, valid: (T) -> Bool) throws -> T {
            guard let text = request.queryValue(key) else { return fallback }
            guard let v = T(text), valid(v) else { throw APIError.invalid("query parameter \(key)=\(text) is not valid") }
            return v
        }
        batchSize = try number("batch_size", batchSize) { (1...10_000).contains($0) }
        learningRate = try number("learning_rate", learningRate) { $0 > 0 && $0 <= 10 }
        weightDecay = try number("weight_decay", weightDecay) { $0 >= 0 && $0 < 1 }
        window = try number("window", window) { (1...5000).contains($0) }
        slide = try number("slide", slide) { $0 >= 0 && $0 <= 5000 }
        grow = try number("grow", grow) { _ in true }
    }
}

/// The summary a streamed task answers with.
struct StreamTaskSummary: Encodable {
    var task: Int
    var name: String
    var modelVersion: Int
    var examples: Int
    var batches: Int
    var columns: [Int]
    var grewBy: Int
    var meanLoss: Float
    var accuracy: Float
    enum CodingKeys: String, CodingKey {
        case task, name, examples, batches, columns, accuracy
        case modelVersion = "model_version", grewBy = "grew_by", meanLoss = "mean_loss"
    }
}

extension PFCService {
    func registerTaskStream(_ r: inout Router) {
        let limits = configuration.limits
        r.post("/v1/models/{id}/tasks/stream", options: .streaming(maxBodyBytes: limits.maxStreamedDatasetBytes)) { [self] request, ctx in
            let tenant = try ctx.tenantID(), id = try request.pathParameter("id")
            guard JSONCoding.mediaType(request) == "application/x-ndjson" else {
                throw APIError.unsupportedMediaType(JSONCoding.mediaType(request), accepted: ["application/x-ndjson"])
            }
            let options = try StreamTaskOptions(request)
            try quotas.admitJob(tenantID: tenant)
            let summary = try streamTask(request, options: options, modelID: id, tenantID: tenant)
            return try JSONCoding.response(summary, status: .created)
        }
    }

    /// Trains one SLW step per `batchSize` examples as they arrive; nothing is stored unless the
    /// whole body was read and trained, and then the version, ledger and components in one transaction.
    func streamTask(_ request: Request, options o: StreamTaskOptions, modelID: String, tenantID: String) throws -> StreamTaskSummary {
        let (model, latest) = try storeCall {
            try store.read { s in (try s.model(id: modelID, tenantID: tenantID), try s.latestModelVersion(modelID: modelID, tenantID: tenantID)) }
        }
        let modelSpec = try spec(of: model), arch = modelSpec.architecture
        guard arch.kind.blockCount > 0 else { throw APIError.invalid("the sliding window trains PFC basis columns; a \(arch.kind.rawValue) model has none") }
        if let problem = SlidingWindowOptimizer.scheduleProblem(width: o.window, slide: o.slide, start: 0) { throw APIError.invalid(problem) }
        // One batch's forward and backward pass runs on this request's thread: bound it like a prediction.
        try configuration.limits.checkInference(rows: o.batchSize, of: arch, what: "a streamed task batch")
        var network = try ModelFile.decode(Array(try storeCall { try store.modelWeights(modelID: modelID, version: latest.version, tenantID: tenantID) }))
        var state = ContinualState(metrics: latest.metrics)
        var optimizer = SlidingWindowOptimizer(learningRate: o.learningRate, weightDecay: o.weightDecay, width: o.window,
                                               slide: o.slide, start: state.nextWindowStart)
        var rows: [[Float]] = [], labels: [Int] = [], rowNumbers: [Int] = []
        var records: [(rows: [Int], window: Range<Int>)] = []
        var grewBy = 0, examples = 0, lossSum: Double = 0, correct = 0

        func trainBatch() throws {
            guard !rows.isEmpty else { return }
            let needed = optimizer.window.upperBound
            if needed > network.architecture.basis {
                guard o.grow else {
                    throw APIError.invalid("after \(examples) examples the window reaches column \(needed) but the model has K = "
                        + "\(network.architecture.basis); nothing was stored. Resend with grow=true or a smaller slide")
                }
                try configuration.limits.checkBasis(needed, of: network.architecture, action: "growing the model after \(examples) streamed examples")
                let extra = needed - network.architecture.basis
                do { network = try BasisGrowth.appendColumns(to: network, count: extra, seed: UInt64(grewBy + 7)) } catch {
                    throw APIError.invalid("cannot grow the model: \(error)")
                }
                grewBy += extra
            }
            var x = Matrix(rows: arch.inputDim, cols: rows.count)
            for (j, r) in rows.enumerated() { for i in 0..<arch.inputDim { x[i, j] = r[i] } }
            let result = network.lossAndGradients(x: x, labels: labels)
            var params = network.parameters
            let window: Range<Int>
            do { window = try optimizer.stepChecked(&params, gradients: result.gradients) } catch {
                throw APIError.invalid("sliding window: \(error)")
            }
            network.parameters = params
            guard result.loss.isFinite, nonFiniteProblem(network) == nil else {
                throw APIError.invalid("training diverged after \(examples) streamed examples (the loss or weights became NaN or "
                    + "infinite; try a smaller learning_rate); nothing was stored")
            }
            lossSum += Double(result.loss) * Double(rows.count)
            correct += zip(result.outputs.columnArgmax(), labels).filter { $0 == $1 }.count
            records.append((rowNumbers, window))
            rows.removeAll(keepingCapacity: true); labels.removeAll(keepingCapacity: true); rowNumbers.removeAll(keepingCapacity: true)
        }

        try NDJSONReader.forEachExample(in: request.body, maxBytes: configuration.limits.maxStreamedDatasetBytes) { example, line in
            guard example.features.count == arch.inputDim else {
                throw APIError.invalid("NDJSON line \(line) has \(example.features.count) features but the model's input_dim is \(arch.inputDim)")
            }
            let values = example.features.map { Float($0) }
            if let col = values.firstIndex(where: { !$0.isFinite || (arch.nonnegative && $0 < 0) }) {
                throw APIError.invalid("NDJSON line \(line), column \(col + 1): not a finite\(arch.nonnegative ? " non-negative" : "") number")
            }
            guard case .one(let value) = example.label else {
                throw APIError.invalid("NDJSON line \(line): tasks take one label per example, not per-step labels")
            }
            let label = try DatasetUpload.integerLabel(value, row: line)
            guard label < arch.outputDim else { throw APIError.invalid("NDJSON line \(line): label \(label) ≥ output_dim \(arch.outputDim)") }
            rows.append(values); labels.append(label); rowNumbers.append(examples)
            examples += 1
            // The whole stream trains on this request's thread: bound its total work too.
            if examples % o.batchSize == 0, let work = network.architecture.inferenceWork(rows: examples),
               work > configuration.limits.maxStreamedTaskWork {
                throw APIError.invalid("the stream passed max_streamed_task_work (\(configuration.limits.maxStreamedTaskWork) multiply-adds) "
                    + "after \(examples) examples; nothing was stored: split it into several tasks or queue it as a job (POST /v1/models/{id}/tasks)")
            }
            if rows.count == o.batchSize { try trainBatch() }
        }
        try trainBatch()
        guard !records.isEmpty else { throw APIError.invalid("the stream held no examples") }

        state.tasks += 1
        state.nextWindowStart = optimizer.position
        let trained = Set(records.flatMap { Array($0.window) })
        state.resetColumns.removeAll(where: trained.contains)
        let columns = [records.map(\.window.lowerBound).min()!, records.map(\.window.upperBound).max()!]
        var metrics = state.metrics
        metrics["task"] = .number(Double(state.tasks)); metrics["task_name"] = .string(o.name)
        metrics["grew_by"] = .number(Double(grewBy)); metrics["batches"] = .number(Double(records.count))
        metrics["window_columns"] = .array(columns.map { .number(Double($0)) })
        metrics["streamed_examples"] = .number(Double(examples))
        metrics["train_accuracy"] = .number(Double(correct) / Double(examples))
        let metricsJSON = String(decoding: try JSONCoding.encoder.encode(JSONValue.object(metrics)), as: UTF8.self)
        let weights = Data(ModelFile.encode(network))
        let grownSpec = ModelSpec(architecture: network.architecture, seed: modelSpec.seed)
        let blocks = network.architecture.kind.blockCount
        let taskNumber = state.tasks
        let version = try storeCall {
            try store.transaction { s in
                let v = try s.appendModelVersion(modelID: modelID, tenantID: tenantID, parentVersion: latest.version, reason: .task,
                                                 metrics: metricsJSON, weights: weights)
                if grewBy > 0 {
                    try s.updateModelArchitecture(modelID: modelID, tenantID: tenantID,
                                                  architecture: String(decoding: try JSONCoding.encoder.encode(grownSpec), as: UTF8.self))
                }
                try s.appendLedger(records.enumerated().map { i, r in
                    LedgerEntry(modelID: modelID, version: v.version, task: taskNumber, epoch: 1, batchIndex: i,
                                examples: LedgerRows.encode(r.rows),
                                windows: "[" + Array(repeating: "[\(r.window.lowerBound),\(r.window.upperBound)]", count: blocks).joined(separator: ",") + "]")
                }, tenantID: tenantID)
                return v.version
            }
        }
        return StreamTaskSummary(task: taskNumber, name: o.name, modelVersion: version, examples: examples, batches: records.count,
                                 columns: columns, grewBy: grewBy, meanLoss: Float(lossSum / Double(examples)),
                                 accuracy: Float(correct) / Float(examples))
    }
}
