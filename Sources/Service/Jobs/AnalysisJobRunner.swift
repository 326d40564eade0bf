// AnalysisJobRunner: runs one `analysis` job: per-example Fishers with heartbeats, then D-NPEFF or LRM-NPEFF
// (or coefficient fitting of stored components to another dataset), then writes every component, the analysis
// summary and the job's completion in one transaction.
import Foundation
import Linalg
import Logging
import NPEFF
import PFC
import Storage

struct AnalysisJobRunner {
    let workers: JobWorkers
    let job: Job
    let owner: String
    let params: AnalysisJobParams

    var store: any Store { workers.store }
    var configuration: ServiceConfiguration { workers.configuration }

    /// Why a run stopped before its end.
    enum Stop: Error { case cancelled, leaseLost, shutdown }

    func run() {
        do {
            switch params.operation {
            case .compute: try compute(params)
            case .fit: try fit(params)
            }
        } catch Stop.cancelled {
            try? store.transaction { s in
                if params.operation == .compute {
                    try s.updateAnalysis(id: params.analysisID, tenantID: job.tenantID, state: "cancelled")
                }
                try s.finishCancelledJob(id: job.id, owner: owner)
            }
        } catch Stop.leaseLost, StoreError.leaseLost {
            workers.logger.warning("lost the lease of a job; another worker owns it now", metadata: ["job": "\(job.id)"])
        } catch Stop.shutdown {
            // Queued again (the analysis pending with it); the next start runs it from the beginning.
            workers.release(job, owner: owner) { s, state in
                guard params.operation == .compute else { return }
                try s.updateAnalysis(id: params.analysisID, tenantID: job.tenantID, state: state == .queued ? "pending" : "cancelled")
            }
        } catch {
            workers.end(job, owner: owner, after: error, message: "\(error)") { s, ending in
                guard params.operation == .compute else { return }
                let state = switch ending { case .cancelled: "cancelled"; case .failed: "failed"; case .requeued: "pending" }
                try s.updateAnalysis(id: params.analysisID, tenantID: job.tenantID, state: state)
            }
        }
    }

    // MARK: - Heartbeats

    final class Beat {
        var last = ContinuousClock.now - .seconds(3600)
        var stop: Stop?
    }

    /// Heartbeats with `progress` when the interval passed (or `force`); records a stop request.
    func beat(_ b: Beat, _ progress: AnalysisProgressDTO, force: Bool = false) {
        if workers.isStopping { b.stop = b.stop ?? .shutdown; return }
        let now = ContinuousClock.now
        guard force || now - b.last >= .milliseconds(Int(configuration.heartbeatSeconds * 1000)) else { return }
        b.last = now
        do {
            if try store.heartbeat(jobID: job.id, owner: owner, progress: try JSONColumn(progress), leaseDuration: configuration.leaseSeconds) == .cancelRequested {
                b.stop = b.stop ?? .cancelled
            }
        } catch StoreError.leaseLost {
            b.stop = .leaseLost
        } catch {
            workers.logger.warning("heartbeat failed; continuing", metadata: ["job": "\(job.id)", "error": "\(error)"])
        }
    }

    // MARK: - Loading

    struct Inputs {
        var analysis: Analysis
        var request: AnalysisRequest
        var network: any SeededBackward
        var data: LabeledDataset
        var rows: [Int]
    }

    func load(_ params: AnalysisJobParams, examples: Int?) throws -> Inputs {
        let tenant = job.tenantID
        let analysis = try store.analysis(id: params.analysisID, tenantID: tenant)
        let request = try JSONDecoder().decode(AnalysisRequest.self, from: Data(analysis.params.utf8))
        let model = try store.model(id: analysis.modelID, tenantID: tenant)
        let spec = try JSONDecoder().decode(ModelSpec.self, from: Data(model.architecture.utf8))
        let weights = try store.modelWeights(modelID: analysis.modelID, version: analysis.modelVersion, tenantID: tenant)
        guard let network = try ModelFile.decode(Array(weights)) as? any SeededBackward else {
            throw JobError("this model kind has no per-example gradients")
        }
        let dataset = try store.dataset(id: params.datasetID, tenantID: tenant)
        // Only the analysed rows are read (all of them: the dataset once, held to the dataset-load limit).
        let rows = AnalysisCompute.rows(count: dataset.examples, examples: examples ?? request.examples, seed: request.seed)
        let data = rows.count == dataset.examples
            ? try DatasetBlobReader.load(from: store, dataset: dataset, tenantID: tenant, classes: spec.architecture.outputDim, limits: configuration.limits)
            : try DatasetBlobReader.load(from: store, dataset: dataset, tenantID: tenant, classes: spec.architecture.outputDim, rows: rows)
        return Inputs(analysis: analysis, request: request, network: network, data: data, rows: rows)
    }

    /// PEFs of every example, in chunks so progress and cancellation are seen between them.
    func pefs(_ inputs: Inputs, _ b: Beat) throws -> AnalysisCompute.PEFs {
        let n = inputs.data.count
        var done = 0
        let result = try AnalysisCompute.pefs(inputs.network, data: inputs.data, method: inputs.request.method,
                                              options: inputs.request.pefOptions(parameterCount: inputs.network.parameterCount)) { count in
            done += count
            beat(b, AnalysisProgressDTO(phase: "pefs", examplesDone: done, examples: n, step: 0, steps: inputs.request.steps, loss: nil),
                 force: done == n)
            if let stop = b.stop { throw stop }
        }
        return result
    }

    // MARK: - Compute

    private func compute(_ params: AnalysisJobParams) throws {
        let started = ContinuousClock.now
        let tenant = job.tenantID
        try store.updateAnalysis(id: params.analysisID, tenantID: tenant, state: "running")
        let inputs = try load(params, examples: nil)
        let request = inputs.request, n = inputs.data.count
        let b = Beat()
        let pefs = try pefs(inputs, b)
        let steps = request.steps
        var losses: [LossDTO] = []
        var w: Matrix, h: Matrix
        let kept: [Int], m: Int
        var stepsDone = 0
        switch pefs {
        case .diagonal(let raw):
            let p = raw.pruned()
            let options = DNPEFFOptions(components: request.components, iterations: steps, seed: request.seed &+ 43_190_432_042,
                                        logEvery: max(1, min(10, steps / 20)))
            // A cancel (seen by the heartbeat at a logged step) ends the decomposition at the next step.
            let d = DNPEFF.fit(p, options: options, onLog: { step, loss in
                stepsDone = step
                losses.append(LossDTO(phase: "nmf", step: step, loss: loss))
                beat(b, AnalysisProgressDTO(phase: "decomposition", examplesDone: n, examples: n, step: step, steps: steps, loss: loss))
            }, shouldStop: { b.stop != nil })
            w = d.w; h = d.h; kept = d.keptColumns; m = d.parameterCount
            AnalysisCompute.normalizeRows(h: &h, w: &w, power: 1)
        case .lowRank(let raw):
            let p = raw.pruned()
            let gOnly = steps >= 5 ? steps / 5 : 0
            let options = LRMNPEFFOptions(components: request.components, gOnlyIterations: gOnly, jointIterations: steps - gOnly,
                                          seed: request.seed &+ 32497, logEvery: max(1, min(10, steps / 20)))
            let d = LRMNPEFF.fit(p, options: options, onLog: { record in
                let step = record.phase == "g_only" ? record.step : gOnly + record.step
                stepsDone = step
                losses.append(LossDTO(phase: record.phase, step: step, loss: record.loss))
                beat(b, AnalysisProgressDTO(phase: "decomposition", examplesDone: n, examples: n, step: step, steps: steps, loss: record.loss))
            }, shouldStop: { b.stop != nil })
            w = d.w; h = d.g; kept = d.keptColumns; m = d.parameterCount
            AnalysisCompute.normalizeRows(h: &h, w: &w, power: 2)
        }
        if let stop = b.stop { throw stop }
        _ = stepsDone
        let finalLoss = losses.last?.loss
        // A diverged model's gradients overflow: its factors are NaN and no summary could be stored.
        if losses.contains(where: { !$0.loss.isFinite }) || w.storage.contains(where: { !$0.isFinite }) || h.storage.contains(where: { !$0.isFinite }) {
            throw JobError("the factorization is not finite: the model's per-example gradients overflow (a diverged model?); nothing was stored")
        }
        beat(b, AnalysisProgressDTO(phase: "storing", examplesDone: n, examples: n, step: steps, steps: steps, loss: finalLoss), force: true)
        if let stop = b.stop { throw stop }

        let records = AnalysisCompute.components(analysisID: inputs.analysis.id, method: request.method, w: w, h: h, keptColumns: kept,
                                                 network: inputs.network, rows: inputs.rows, labels: pefs.examples.labels,
                                                 predictions: pefs.examples.predictions, classes: inputs.data.classes)
        let seconds = Double((ContinuousClock.now - started).components.seconds)
            + Double((ContinuousClock.now - started).components.attoseconds) * 1e-18
        // Keep the loss curve short: at most 200 points, always the last.
        let stride = max(1, (losses.count + 199) / 200)
        let curve = losses.enumerated().filter { $0.offset % stride == 0 || $0.offset == losses.count - 1 }.map(\.element)
        let summary = AnalysisSummary(examples: n, rows: inputs.rows, parameterCount: m,
                                      keptColumns: FloatBlob.encode(int32s: kept).base64EncodedString(), keptParameters: kept.count,
                                      finalLoss: finalLoss, losses: curve, seconds: seconds)
        let summaryJSON = String(decoding: try JSONCoding.encoder.encode(summary), as: UTF8.self)
        let result = AnalysisJobResult(analysisID: inputs.analysis.id, operation: "compute", datasetID: params.datasetID, examples: n,
                                       components: request.components, finalLoss: finalLoss, seconds: seconds)
        let resultJSON = try JSONColumn(result)
        // Compute cut short by shutdown (ComputeCancellation) must never be stored.
        if workers.isStopping { throw Stop.shutdown }
        try store.transaction { s in
            try s.insert(records, tenantID: tenant)
            try s.updateAnalysis(id: inputs.analysis.id, tenantID: tenant, state: "ready", summary: summaryJSON)
            try s.completeJob(id: job.id, owner: owner, result: resultJSON)
        }
        workers.logger.info("analysis ready", metadata: ["job": "\(job.id)", "analysis": "\(inputs.analysis.id)", "loss": "\(finalLoss ?? .nan)"])
    }

    // MARK: - Fit

    private func fit(_ params: AnalysisJobParams) throws {
        let started = ContinuousClock.now
        let tenant = job.tenantID
        let analysis = try store.analysis(id: params.analysisID, tenantID: tenant)
        guard analysis.state == "ready", let stored = analysis.summary.flatMap({ try? JSONDecoder().decode(AnalysisSummary.self, from: Data($0.utf8)) }) else {
            throw JobError("analysis \(analysis.id) is \(analysis.state), not ready")
        }
        let request = try JSONDecoder().decode(AnalysisRequest.self, from: Data(analysis.params.utf8))
        let inputs = try load(params, examples: params.examples ?? request.examples)
        _ = request
        let n = inputs.data.count
        let steps = params.steps ?? request.steps
        let components = try store.analysisComponents(analysisID: analysis.id, tenantID: tenant)
        let kept = stored.keptColumnIndices
        let r = components.count
        var h = Matrix(rows: r, cols: kept.count)
        for (j, c) in components.enumerated() {
            let v = FloatBlob.decode(c.pseudoFisher)
            guard v.count == kept.count else { throw JobError("component \(j) has \(v.count) values, expected \(kept.count)") }
            h.storage.replaceSubrange((j * kept.count)..<((j + 1) * kept.count), with: v)
        }
        let b = Beat()
        let pefs = try pefs(inputs, b)
        beat(b, AnalysisProgressDTO(phase: "fitting", examplesDone: n, examples: n, step: 0, steps: steps, loss: nil), force: true)
        if let stop = b.stop { throw stop }
        let w: Matrix
        // Progress (and with it a cancel) is seen between steps.
        let afterStep = { (step: Int) -> Bool in
            beat(b, AnalysisProgressDTO(phase: "fitting", examplesDone: n, examples: n, step: step, steps: steps, loss: nil))
            return b.stop == nil
        }
        switch pefs {
        case .diagonal(let p):
            w = DNPEFF.fitCoefficients(p, components: h, keptColumns: kept, iterations: steps, afterStep: afterStep)
        case .lowRank(let p):
            w = LRMNPEFF.fitCoefficients(p, components: h, keptColumns: kept, iterations: steps, afterStep: afterStep)
        }
        if let stop = b.stop { throw stop }
        beat(b, AnalysisProgressDTO(phase: "storing", examplesDone: n, examples: n, step: steps, steps: steps, loss: nil), force: true)
        if let stop = b.stop { throw stop }
        let fitComponents = (0..<r).map { j -> FitSummary.Component in
            let column = w.column(j)
            let top = AnalysisCompute.topExamples(column, rows: inputs.rows, labels: pefs.examples.labels,
                                                  predictions: pefs.examples.predictions, count: AnalysisCompute.storedTopExamples)
            return FitSummary.Component(index: components[j].index, meanCoefficient: column.reduce(0, +) / Float(max(1, column.count)),
                                        topExamples: top)
        }
        let fitSummary = FitSummary(jobID: job.id, datasetID: params.datasetID, examples: n, steps: steps, components: fitComponents)
        let seconds = Double((ContinuousClock.now - started).components.seconds)
            + Double((ContinuousClock.now - started).components.attoseconds) * 1e-18
        let result = AnalysisJobResult(analysisID: analysis.id, operation: "fit", datasetID: params.datasetID, examples: n,
                                       components: r, finalLoss: nil, seconds: seconds)
        let resultJSON = try JSONColumn(result)
        // Compute cut short by shutdown (ComputeCancellation) must never be stored.
        if workers.isStopping { throw Stop.shutdown }
        try store.transaction { s in
            // Re-read inside the transaction so concurrent fits never drop each other's entries.
            let current = try s.analysis(id: analysis.id, tenantID: tenant)
            guard var summary = current.summary.flatMap({ try? JSONDecoder().decode(AnalysisSummary.self, from: Data($0.utf8)) }) else {
                throw JobError("analysis \(analysis.id) lost its summary")
            }
            // The latest fit per dataset (what perturbations read), at most `maxFits` datasets: each fit
            // lists r × examples top rows, and every read of the analysis decodes them all.
            summary.fits.removeAll { $0.jobID == job.id || $0.datasetID == fitSummary.datasetID }
            summary.fits.append(fitSummary)
            if summary.fits.count > AnalysisSummary.maxFits { summary.fits.removeFirst(summary.fits.count - AnalysisSummary.maxFits) }
            let text = String(decoding: try JSONCoding.encoder.encode(summary), as: UTF8.self)
            try s.updateAnalysis(id: analysis.id, tenantID: tenant, state: current.state, summary: text)
            try s.completeJob(id: job.id, owner: owner, result: resultJSON)
        }
    }
}

/// The computations analyses share between the job runner and the synchronous routes.
enum AnalysisCompute {
    /// Top examples stored per component (and counted in its label histogram).
    static let storedTopExamples = 32
    /// Top parameters and PFC parts kept per component.
    static let storedTopParameters = 20

    /// The dataset rows an analysis uses: all of them, or a seeded sample of `examples` in ascending order.
    static func rows(count: Int, examples: Int, seed: UInt64) -> [Int] {
        if examples >= count { return Array(0..<count) }
        return GuidedPerturbation.randomExamples(count, count: examples, seed: seed &+ 0x616E).sorted()
    }

    /// Either representation of a dataset's PEFs.
    enum PEFs {
        case diagonal(DiagonalPEFs)
        case lowRank(LowRankPEFs)
        var examples: PEFExamples {
            switch self { case .diagonal(let p): return p.examples; case .lowRank(let p): return p.examples }
        }
    }

    /// PEFs of `data` computed in chunks of 64 examples (unpruned); `afterChunk(count)` runs between chunks and may throw to stop.
    static func pefs(_ net: any SeededBackward, data: LabeledDataset, method: AnalysisMethod, options: PEFOptions,
                     afterChunk: (Int) throws -> Void) throws -> PEFs {
        let chunk = 64
        var diagonal: DiagonalPEFs? = nil, lowRank: LowRankPEFs? = nil
        var fisherSum = [Double]()
        var start = 0
        while start < data.count {
            let end = min(data.count, start + chunk)
            let part = data.subset(start..<end)
            switch method {
            case .diagonal:
                let p = PEFComputer.diagonal(net, data: part, options: options)
                if fisherSum.isEmpty { fisherSum = [Double](repeating: 0, count: p.datasetFisher.count) }
                for i in p.datasetFisher.indices { fisherSum[i] += Double(p.datasetFisher[i]) * Double(part.count) }
                if var all = diagonal {
                    all.matrix = concatenate(all.matrix, p.matrix)
                    all.examples.norms += p.examples.norms
                    all.examples.labels += p.examples.labels
                    all.examples.predictions += p.examples.predictions
                    diagonal = all
                } else { diagonal = p }
            case .lowRank:
                let p = PEFComputer.lowRank(net, data: part, options: options)
                if var all = lowRank {
                    let base = all.matrix.rows
                    all.matrix = concatenate(all.matrix, p.matrix)
                    all.exampleOffsets += p.exampleOffsets.dropFirst().map { $0 + base }
                    all.rowClasses += p.rowClasses
                    all.examples.norms += p.examples.norms
                    all.examples.labels += p.examples.labels
                    all.examples.predictions += p.examples.predictions
                    lowRank = all
                } else { lowRank = p }
            }
            try afterChunk(end - start)
            start = end
        }
        if var d = diagonal {
            d.datasetFisher = fisherSum.map { Float($0 / Double(max(1, data.count))) }
            return .diagonal(d)
        }
        guard let l = lowRank else { throw JobError("the dataset has no examples") }
        return .lowRank(l)
    }

    /// The rows of `a` followed by the rows of `b` (same column count).
    static func concatenate(_ a: SparseRows, _ b: SparseRows) -> SparseRows {
        let base = a.columns.count
        return SparseRows(rows: a.rows + b.rows, cols: a.cols, rowOffsets: a.rowOffsets + b.rowOffsets.dropFirst().map { $0 + base },
                          columns: a.columns + b.columns, values: a.values + b.values)
    }

    /// Rows of `h` scaled to unit L2 norm, with W's columns scaled by ‖h_j‖^power so the model W·H (power 1, D-NPEFF)
    /// or W·(g gᵀ) (power 2, LRM-NPEFF) is unchanged.
    static func normalizeRows(h: inout Matrix, w: inout Matrix, power: Int) {
        for j in 0..<h.rows {
            var s: Float = 0
            for p in 0..<h.cols { s += h[j, p] * h[j, p] }
            let norm = s.squareRoot()
            guard norm > 0, norm.isFinite else { continue }
            for p in 0..<h.cols { h[j, p] /= norm }
            let scale = power == 2 ? s : norm
            for i in 0..<w.rows { w[i, j] *= scale }
        }
    }

    /// The `count` examples with the largest coefficient (ties: lower index first).
    static func topExamples(_ coefficients: [Float], rows: [Int], labels: [Int], predictions: [Int], count: Int) -> [TopExampleDTO] {
        let order = coefficients.indices.sorted { (coefficients[$0], $1) > (coefficients[$1], $0) }.prefix(count)
        return order.map { i in
            TopExampleDTO(row: rows[i], coefficient: coefficients[i].isFinite ? coefficients[i] : 0, label: labels[i], prediction: predictions[i])
        }
    }

    /// (matrix name, rows, cols, offset) of every parameter matrix in flattened order.
    static func layout(_ net: any Network) -> [(name: String, rows: Int, cols: Int, offset: Int)] {
        var out = [(name: String, rows: Int, cols: Int, offset: Int)](), offset = 0
        for p in net.parameters {
            out.append((p.name, p.value.rows, p.value.cols, offset))
            offset += p.value.count
        }
        return out
    }

    /// The component records of a decomposition (rows of `h` already unit-norm).
    static func components(analysisID: String, method: AnalysisMethod, w: Matrix, h: Matrix, keptColumns: [Int], network: any Network,
                           rows: [Int], labels: [Int], predictions: [Int], classes: Int) -> [AnalysisComponent] {
        let layout = layout(network)
        let parts = PFCPartMapping.parts(of: network)
        return (0..<h.rows).map { j in
            let g = h.row(j)
            let coefficients = w.column(j)
            let top = topExamples(coefficients, rows: rows, labels: labels, predictions: predictions, count: storedTopExamples)
            var histogram = [Int](repeating: 0, count: max(classes, (top.map(\.label).max() ?? -1) + 1))
            for e in top where e.label >= 0 { histogram[e.label] += 1 }
            let topLabel = histogram.indices.max { (histogram[$0], $1) < (histogram[$1], $0) }
            let byMagnitude = g.indices.sorted { (abs(g[$0]), $1) > (abs(g[$1]), $0) }.prefix(storedTopParameters).filter { g[$0] != 0 }
            let topParameters = byMagnitude.map { q -> ComponentSummary.Parameter in
                let p = keptColumns[q]
                let entry = layout.last { $0.offset <= p }!
                let local = p - entry.offset
                return ComponentSummary.Parameter(block: parts[p]?.block, matrix: entry.name, row: local / entry.cols,
                                                  column: local % entry.cols, value: g[q])
            }
            let mass = method == .lowRank ? g.map { $0 * $0 } : g
            let shares = PFCPartMapping.shares(mass: mass, keptColumns: keptColumns, network: network)
            var flat = [ComponentSummary.Part]()
            for (block, ks) in shares.shares.enumerated() {
                for (k, share) in ks.enumerated() where share > 0 && share.isFinite {
                    flat.append(ComponentSummary.Part(block: block, k: k, share: share))
                }
            }
            flat.sort { a, b in a.share != b.share ? a.share > b.share : (a.block, a.k) < (b.block, b.k) }
            let finiteCoefficients = coefficients.map { $0.isFinite ? $0 : 0 }
            let summary = ComponentSummary(
                index: j,
                coefficientMean: finiteCoefficients.reduce(0, +) / Float(max(1, coefficients.count)),
                coefficientMax: finiteCoefficients.max() ?? 0,
                labelHistogram: histogram, topLabel: top.isEmpty ? nil : topLabel,
                topLabelShare: top.isEmpty ? 0 : Double(topLabel.map { histogram[$0] } ?? 0) / Double(top.count),
                pseudoFisherNorm: { let s = g.reduce(Float(0)) { $0 + $1 * $1 }.squareRoot(); return s.isFinite ? s : 0 }(),
                nonzeros: g.filter { $0 != 0 }.count,
                topParameters: topParameters,
                pfcParts: ComponentSummary.Parts(shares: Array(flat.prefix(storedTopParameters)), unassigned: finite(shares.unassigned)))
            let topJSON = String(decoding: (try? JSONCoding.encoder.encode(top)) ?? Data("[]".utf8), as: UTF8.self)
            let summaryJSON = String(decoding: (try? JSONCoding.encoder.encode(summary)) ?? Data("{}".utf8), as: UTF8.self)
            return AnalysisComponent(analysisID: analysisID, index: j, pseudoFisher: FloatBlob.encode(g),
                                     coefficients: FloatBlob.encode(coefficients), topExamples: topJSON, summary: summaryJSON)
        }
    }
}

extension AnalysisRequest {
    /// The PEF options, with top-K capped at the parameter count.
    func pefOptions(parameterCount m: Int) -> PEFOptions {
        PEFOptions(likelihood: likelihood, classThreshold: classThreshold, topK: min(topK, max(1, m)))
    }
}
