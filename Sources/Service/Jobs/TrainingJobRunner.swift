// TrainingJobRunner: runs one `train` job: load, train with heartbeats, then write the new model
// version, its component statistics and the job's completion in one transaction.
import Foundation
import HTTP
import Linalg
import Logging
import PFC
import Storage

struct TrainingJobRunner {
    let workers: JobWorkers
    let job: Job
    let owner: String

    var store: any Store { workers.store }
    var configuration: ServiceConfiguration { workers.configuration }

    enum Stop { case cancelled, leaseLost, shutdown, diverged(String) }

    func run() {
        do {
            try train()
        } catch StoreError.leaseLost {
            workers.logger.warning("lost the lease of a job; another worker owns it now", metadata: ["job": "\(job.id)"])
        } catch {
            let message = "\(error)"
            workers.logger.error("job failed", metadata: ["job": "\(job.id)", "error": "\(message)"])
            try? store.failJob(id: job.id, owner: owner, error: message)
        }
    }

    private func train() throws {
        let tenant = job.tenantID
        guard let modelID = job.modelID else { throw JobError("job has no model") }
        let isTask = job.kind == "task"
        let taskRequest = isTask ? try JSONDecoder().decode(TaskRequest.self, from: Data(job.params.utf8)) : nil
        let params = isTask ? nil : try JSONDecoder().decode(TrainRequest.self, from: Data(job.params.utf8))
        let datasetID = taskRequest?.datasetID ?? params!.datasetID
        let model = try store.model(id: modelID, tenantID: tenant)
        let spec = try JSONDecoder().decode(ModelSpec.self, from: Data(model.architecture.utf8))
        let base = try params?.version.map { try store.modelVersion(modelID: modelID, version: $0, tenantID: tenant) }
            ?? store.latestModelVersion(modelID: modelID, tenantID: tenant)
        var network = try ModelFile.decode(Array(try store.modelWeights(modelID: modelID, version: base.version, tenantID: tenant)))
        let dataset = try store.dataset(id: datasetID, tenantID: tenant)
        let data = try DatasetBlobReader.load(from: store, dataset: dataset, tenantID: tenant, classes: spec.architecture.outputDim)
        var continual = ContinualState(metrics: base.metrics)
        let options = try taskRequest.map { try $0.trainingOptions(limits: configuration.limits, start: continual.nextWindowStart) }
            ?? params!.trainingOptions(limits: configuration.limits)
        // A task whose window would run past K grows the model when asked (research/pfc.md §3 capacity rule).
        var grewBy = 0
        if let task = taskRequest {
            let trainer = Trainer(options: options)
            if let need = trainer.requiredBasis(trainingExamples: trainer.trainingExamples(fromDataSetOf: data.count)),
               need > network.architecture.basis {
                guard task.grow else {
                    throw JobError("the task's window needs K = \(need) basis columns but the model has \(network.architecture.basis); send \"grow\": true")
                }
                // Held to the creation limits here too: the limits may have changed since the job was queued.
                do { try configuration.limits.checkBasis(need, of: network.architecture, action: "growing for this task") } catch let e as HTTPError {
                    throw JobError(e.message)
                }
                grewBy = need - network.architecture.basis
                network = try BasisGrowth.appendColumns(to: network, count: grewBy, seed: task.seed &+ 0x6772)
            }
        }
        var records: [BatchRecord] = []
        var stop: Stop? = nil
        var lastBeat = ContinuousClock.now - .seconds(3600)
        let interval = Duration.milliseconds(Int(configuration.heartbeatSeconds * 1000))
        let report = try Trainer(options: options).train(&network, on: data, onStep: isTask ? { records.append($0) } : nil) { p in
            workers.recordThroughput(p.examplesPerSecond)
            if workers.isStopping { stop = .shutdown; return .stop }
            if !p.loss.isFinite {
                stop = .diverged("training diverged: the loss became \(p.loss) in epoch \(p.epoch), batch \(p.batch) "
                    + "(try a smaller learning_rate); no model version was written")
                return .stop
            }
            let now = ContinuousClock.now
            guard now - lastBeat >= interval || p.batch == p.batches else { return .proceed }
            lastBeat = now
            do {
                let progress = String(decoding: try JSONCoding.encoder.encode(ProgressDTO(p)), as: UTF8.self)
                if try store.heartbeat(jobID: job.id, owner: owner, progress: progress, leaseDuration: configuration.leaseSeconds) == .cancelRequested {
                    stop = .cancelled
                    return .stop
                }
            } catch StoreError.leaseLost {
                stop = .leaseLost
                return .stop
            } catch {
                workers.logger.warning("heartbeat failed; continuing", metadata: ["job": "\(job.id)", "error": "\(error)"])
            }
            return .proceed
        }
        switch stop {
        case .cancelled:
            try store.finishCancelledJob(id: job.id, owner: owner)
            return
        case .leaseLost, .shutdown:
            return // the lease expires and a replica runs the job again from the start
        case .diverged(let why):
            throw JobError(why)
        case nil:
            break
        }
        if let problem = nonFiniteProblem(network) {
            throw JobError("training diverged: \(problem) (try a smaller learning_rate); no model version was written")
        }

        var metrics: [String: JSONValue] = [
            "train_accuracy": .number(Double(report.trainAccuracy)), "final_loss": .number(Double(report.finalLoss)),
            "epochs_run": .number(Double(report.epochsRun)), "best_epoch": .number(Double(report.bestEpoch)),
            "examples_per_second": .number(report.examplesPerSecond), "seconds": .number(report.seconds),
            "stopped_early": .bool(report.stoppedEarly), "dataset_id": .string(dataset.id),
            "validation_accuracy": report.validationAccuracy.map { .number(Double($0)) } ?? .null,
            "validation_loss": report.validationLoss.map { .number(Double($0)) } ?? .null,
        ]
        if let shape = dataset.imageShape.flatMap({ try? JSONDecoder().decode([Int].self, from: Data($0.utf8)) }) {
            continual.imageShape = shape  // carried into the metrics below, and by later forgets
        }
        var ledger: [LedgerEntry] = []
        if let task = taskRequest {
            continual.tasks += 1
            continual.nextWindowStart = report.nextWindowStart ?? continual.nextWindowStart
            let kept = records.filter { !$0.skipped && $0.step < (report.keptSteps ?? Int.max) }
            ledger = kept.map { r in
                LedgerEntry(modelID: modelID, version: 0, task: continual.tasks, epoch: r.epoch, batchIndex: r.batchIndex,
                            examples: LedgerRows.encode(r.exampleIndices),
                            windows: "[" + r.windows.map { "[\($0.lowerBound),\($0.upperBound)]" }.joined(separator: ",") + "]",
                            datasetID: dataset.id)
            }
            metrics["task"] = .number(Double(continual.tasks))
            metrics["task_name"] = .string(task.name)
            metrics["grew_by"] = .number(Double(grewBy))
            metrics["batches"] = .number(Double(ledger.count))
            if let cols = report.windowColumns { metrics["window_columns"] = .array([.number(Double(cols.lowerBound)), .number(Double(cols.upperBound))]) }
        }
        let trainedColumns = Set(ledger.flatMap { LedgerRows.windows($0.windows).flatMap { Array($0) } })
        continual.resetColumns.removeAll(where: trainedColumns.contains) // retrained columns carry knowledge again
        for (k, v) in continual.metrics { metrics[k] = v }
        let metricsJSON = String(decoding: try JSONCoding.encoder.encode(JSONValue.object(metrics)), as: UTF8.self)
        let usage = Self.meanActivations(network, data: data)
        let weights = Data(ModelFile.encode(network))
        // Compute cut short by shutdown (ComputeCancellation) must never be stored: the job runs again.
        if workers.isStopping { return }
        try store.transaction { s in
            let v = try s.appendModelVersion(modelID: modelID, tenantID: tenant, parentVersion: base.version,
                                             reason: isTask ? .task : .train, metrics: metricsJSON, weights: weights)
            if !ledger.isEmpty { try s.appendLedger(ledger.map { var e = $0; e.version = v.version; return e }, tenantID: tenant) }
            if grewBy > 0 {
                // The model's shape follows its newest version: K grew.
                let grown = ModelSpec(architecture: network.architecture, seed: spec.seed)
                try s.updateModelArchitecture(modelID: modelID, tenantID: tenant,
                                              architecture: String(decoding: try JSONCoding.encoder.encode(grown), as: UTF8.self))
            }
            let components = usage.enumerated().flatMap { block, means in
                means.enumerated().map { k, mean in
                    Component(modelID: modelID, version: v.version, block: block, column: k,
                              provenance: trainedColumns.contains(k)
                                  ? #"{"job_id":"\#(job.id)","dataset_id":"\#(dataset.id)","task":\#(continual.tasks)}"#
                                  : #"{"job_id":"\#(job.id)","dataset_id":"\#(dataset.id)"}"#,
                              state: continual.resetColumns.contains(k) && !trainedColumns.contains(k) ? .reset : .active,
                              norms: #"{"mean_activation":\#(mean.isFinite ? mean : 0)}"#)
                }
            }
            if !components.isEmpty { try s.upsertComponents(components, tenantID: tenant) }
            let result = TrainResult(modelVersion: v.version, metrics: .object(metrics))
            try s.completeJob(id: job.id, owner: owner, result: String(decoding: try JSONCoding.encoder.encode(result), as: UTF8.self))
        }
        workers.logger.info("job succeeded", metadata: ["job": "\(job.id)", "accuracy": "\(report.validationAccuracy ?? report.trainAccuracy)"])
    }

    /// Mean activation of every basis vector of every block over `data` (empty for the MLP).
    static func meanActivations(_ network: any Network, data: LabeledDataset) -> [[Float]] {
        let blocks: Int
        switch network {
        case is PFCClassifier: blocks = 1
        case is ResidualPFCNetwork: blocks = 2
        default: return []
        }
        var sums: [[Double]] = []
        var start = 0
        while start < data.count {
            let end = min(data.count, start + 500)
            let (x, _) = data.batch(start..<end)
            let acts: [PFCBlock.Activation]
            if let n = network as? PFCClassifier { acts = [n.activation(x)] } else { acts = (network as! ResidualPFCNetwork).activations(x) }
            if sums.isEmpty { sums = acts.map { [Double](repeating: 0, count: $0.hT.cols) } }
            for (b, a) in acts.enumerated() {
                for r in 0..<a.hT.rows { for k in 0..<a.hT.cols { sums[b][k] += Double(a.hT[r, k]) } }
            }
            start = end
        }
        _ = blocks
        return sums.map { $0.map { Float($0 / Double(max(1, data.count))) } }
    }
}

/// A job that cannot run as queued.
struct JobError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// Training progress as stored on the job and sent to clients (nulls spelled out).
struct ProgressDTO: Encodable {
    let p: TrainingProgress
    init(_ p: TrainingProgress) { self.p = p }
    enum CodingKeys: String, CodingKey {
        case epoch, epochs, batch, batches, loss, accuracy
        case examplesPerSecond = "examples_per_second", validationLoss = "validation_loss", validationAccuracy = "validation_accuracy"
    }
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(p.epoch, forKey: .epoch)
        try c.encode(p.epochs, forKey: .epochs)
        try c.encode(p.batch, forKey: .batch)
        try c.encode(p.batches, forKey: .batches)
        try c.encode(p.loss.isFinite ? p.loss : 0, forKey: .loss)
        try c.encode(p.accuracy, forKey: .accuracy)
        try c.encode(p.examplesPerSecond.isFinite ? p.examplesPerSecond : 0, forKey: .examplesPerSecond)
        try c.encode(p.validationLoss, forKey: .validationLoss)
        try c.encode(p.validationAccuracy, forKey: .validationAccuracy)
    }
}
