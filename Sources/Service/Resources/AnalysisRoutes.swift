// AnalysisRoutes: NPEFF analyses of a model version: create (a job), read, components with their top examples,
// top parameters and PFC-part shares, example grids, coefficient fitting (a job) and guided perturbations.
import Foundation
import HTTP
import Linalg
import NPEFF
import PFC
import Storage

extension PFCService {
    func registerAnalyses(_ r: inout Router) {
        let limits = configuration.limits
        r.post("/v1/models/{id}/analyses") { [self] request, ctx in
            let tenant = try ctx.tenantID(), id = try request.pathParameter("id")
            let body = try JSONCoding.decode(AnalysisRequest.self, from: request, maxBytes: limits.maxRequestBytes)
            let (analysis, job) = try enqueueAnalysis(body, modelID: id, tenantID: tenant)
            return try JSONCoding.response(AnalysisCreatedDTO(id: analysis.id, jobID: job.id, state: analysis.state), status: .accepted,
                                           headers: [("Location", "/v1/analyses/\(analysis.id)")])
        }
        r.get("/v1/models/{id}/analyses") { [self] request, ctx in
            let tenant = try ctx.tenantID(), id = try request.pathParameter("id"), page = try Pagination(request)
            _ = try storeCall { try store.model(id: id, tenantID: tenant) }
            // Bounded by bytes too: a summary lists the kept parameter columns and its fits' top examples.
            let result = try storeCall {
                let p = try BoundedPage.read(limit: page.limit, offset: page.offset, size: { ($0.summary?.utf8.count ?? 0) + $0.params.utf8.count }) { p in
                    try store.analyses(tenantID: tenant, modelID: id, page: p)
                }
                return (try store.read { s in try p.items.map { try reconciled($0, session: s) } }, p.nextOffset)
            }
            return try JSONCoding.response(ListPage(items: result.0.map(AnalysisDTO.init), nextOffset: result.1))
        }
        r.get("/v1/analyses/{id}") { [self] request, ctx in
            let tenant = try ctx.tenantID(), id = try request.pathParameter("id")
            let analysis = try storeCall { try store.read { s in try reconciled(try s.analysis(id: id, tenantID: tenant), session: s) } }
            return try JSONCoding.response(AnalysisDTO(analysis: analysis))
        }
        r.get("/v1/analyses/{id}/components") { [self] request, ctx in
            let tenant = try ctx.tenantID(), id = try request.pathParameter("id")
            let (analysis, components) = try storeCall {
                try store.read { s in
                    let a = try s.analysis(id: id, tenantID: tenant)
                    return (a, try s.analysisComponents(analysisID: id, tenantID: tenant, summariesOnly: true))
                }
            }
            try Self.requireReady(analysis)
            let items = try components.map { AnalysisComponentSummaryDTO(summary: try Self.summary(of: $0)) }
            return try JSONCoding.response(AnalysisComponentListDTO(analysisID: id, method: analysis.kind, components: items))
        }
        r.get("/v1/analyses/{id}/components/{j}") { [self] request, ctx in
            let tenant = try ctx.tenantID(), id = try request.pathParameter("id")
            let (analysis, component) = try readComponent(id: id, index: try request.pathParameter("j"), tenantID: tenant)
            let top = (try? JSONDecoder().decode([TopExampleDTO].self, from: Data(component.topExamples.utf8))) ?? []
            return try JSONCoding.response(AnalysisComponentDTO(analysisID: id, method: analysis.kind, summary: try Self.summary(of: component),
                                                                topExamples: top))
        }
        r.get("/v1/analyses/{id}/components/{j}/examples.png") { [self] request, ctx in
            let tenant = try ctx.tenantID(), id = try request.pathParameter("id")
            let count = try request.queryValue("count").map { v -> Int in
                guard let n = Int(v), (1...AnalysisCompute.storedTopExamples).contains(n) else {
                    throw APIError.badRequest("count must be an integer in 1…\(AnalysisCompute.storedTopExamples)")
                }
                return n
            } ?? 16
            let (analysis, component) = try readComponent(id: id, index: try request.pathParameter("j"), tenantID: tenant)
            guard let datasetID = analysis.datasetID else { throw APIError.invalid("the analysis has no dataset") }
            let dataset = try storeCall { try store.dataset(id: datasetID, tenantID: tenant) }
            guard let shape = dataset.imageShape.flatMap({ try? JSONDecoder().decode([Int].self, from: Data($0.utf8)) }),
                  shape.count >= 2, shape.allSatisfy({ $0 >= 1 }), let pixels = CheckedSize.product(shape[0], shape[1]),
                  dataset.features % pixels == 0 else {
                throw APIError.invalid("dataset \(datasetID) has no image_shape; example grids need image-shaped data")
            }
            let top = ((try? JSONDecoder().decode([TopExampleDTO].self, from: Data(component.topExamples.utf8))) ?? []).prefix(count)
            guard !top.isEmpty else { throw APIError.invalid("the component has no top examples") }
            // Only the drawn rows are read into memory (the dataset may be 1 GiB of bytes, 4 GB as floats).
            let rows = top.map(\.row).filter { $0 < dataset.examples }
            guard !rows.isEmpty else { throw APIError.invalid("the component's top examples are not in dataset \(datasetID)") }
            let data = try storeCall { try DatasetBlobReader.load(from: store, dataset: dataset, tenantID: tenant, classes: dataset.classes, rows: rows) }
            let png = Self.grid(data, rows: Array(0..<data.count), height: shape[0], width: shape[1])
            var resp = Response(status: .ok, body: .bytes(png))
            resp.headers.replaceOrAdd(name: "Content-Type", value: "image/png")
            return resp
        }
        r.post("/v1/analyses/{id}/fit") { [self] request, ctx in
            let tenant = try ctx.tenantID(), id = try request.pathParameter("id")
            let body = try JSONCoding.decode(FitRequest.self, from: request, maxBytes: limits.maxRequestBytes)
            try quotas.admitJob(tenantID: tenant)
            if let e = body.examples, !(1...AnalysisRequest.maxExamples).contains(e) {
                throw APIError.invalid("examples must be in 1…\(AnalysisRequest.maxExamples)")
            }
            if let st = body.steps, !(1...AnalysisRequest.maxSteps).contains(st) {
                throw APIError.invalid("steps must be in 1…\(AnalysisRequest.maxSteps)")
            }
            let (analysis, dataset) = try storeCall {
                try store.read { s in (try s.analysis(id: id, tenantID: tenant), try s.dataset(id: body.datasetID, tenantID: tenant)) }
            }
            try Self.requireReady(analysis)
            let (_, network) = try loadNetwork(modelID: analysis.modelID, tenantID: tenant, version: analysis.modelVersion)
            try checkDataset(dataset, against: network.architecture, tenantID: tenant)
            if let stored = try? JSONDecoder().decode(AnalysisRequest.self, from: Data(analysis.params.utf8)) {
                try configuration.limits.checkAnalysis(stored, parameters: network.parameterCount, classes: network.architecture.outputDim,
                                                       examples: min(body.examples ?? stored.examples, dataset.examples),
                                                       reserved: dataset.rowsMemory(min(body.examples ?? stored.examples, dataset.examples)),
                                                       what: "this fit")
            }
            let params = AnalysisJobParams(analysisID: id, operation: .fit, datasetID: dataset.id, examples: body.examples, steps: body.steps)
            let job = try Job(tenantID: tenant, modelID: analysis.modelID, params: .analysis(params))
            try storeCall { try store.transaction { s in try quotas.admitJob(tenantID: tenant, in: s); try s.enqueue(job) } }
            workers.wake()
            return try JSONCoding.response(JobDTO(job: job), status: .accepted, headers: [("Location", "/v1/jobs/\(job.id)")])
        }
        r.post("/v1/analyses/{id}/components/{j}/perturb") { [self] request, ctx in
            let tenant = try ctx.tenantID(), id = try request.pathParameter("id")
            let body = try JSONCoding.decode(PerturbRequest.self, from: request, maxBytes: limits.maxRequestBytes)
            // Stopped (at its next FISTA iteration) when the client goes: nobody would read the answer.
            let token = ctx.computeToken
            let answer = try ComputeCancellation.run(token) {
                try perturb(body, analysisID: id, index: try request.pathParameter("j"), tenantID: tenant)
            }
            if token.isCancelled { throw requestAbandoned() }
            return try JSONCoding.response(answer)
        }
    }

    /// Validates an analysis request against the model and dataset, then stores the analysis and its job together.
    func enqueueAnalysis(_ body: AnalysisRequest, modelID: String, tenantID: String) throws -> (Analysis, Job) {
        try body.validate()
        try quotas.admitJob(tenantID: tenantID)
        let dataset = try storeCall {
            try store.read { s in
                _ = try s.model(id: modelID, tenantID: tenantID)
                return try s.dataset(id: body.datasetID, tenantID: tenantID)
            }
        }
        let (version, network) = try loadNetwork(modelID: modelID, tenantID: tenantID, version: body.version)
        guard network is any SeededBackward else { throw APIError.invalid("this model kind has no per-example gradients") }
        try checkDataset(dataset, against: network.architecture, tenantID: tenantID)
        let m = network.parameterCount
        guard body.topK <= m else { throw APIError.invalid("top_k must be at most the model's parameter count, \(m)") }
        try configuration.limits.checkAnalysis(body, parameters: m, classes: network.architecture.outputDim,
                                               examples: min(body.examples, dataset.examples),
                                               reserved: dataset.rowsMemory(min(body.examples, dataset.examples)), what: "this analysis")
        var stored = body
        stored.version = version
        let params = AnalysisJobParams(analysisID: StoreID.make(), operation: .compute, datasetID: dataset.id, examples: nil, steps: nil)
        let job = try Job(tenantID: tenantID, modelID: modelID, params: .analysis(params))
        let analysis = Analysis(id: params.analysisID, tenantID: tenantID, modelID: modelID, modelVersion: version, datasetID: dataset.id,
                                kind: body.method.rawValue, params: String(decoding: try JSONCoding.encoder.encode(stored), as: UTF8.self),
                                state: "pending", jobID: job.id)
        try storeCall {
            try store.transaction { s in
                try quotas.admitJob(tenantID: tenantID, in: s)
                try s.enqueue(job)
                try s.insert(analysis)
            }
        }
        workers.wake()
        return (analysis, job)
    }

    /// The analysis with a state that reflects a job that ended without reaching the analysis (e.g. out of attempts).
    func reconciled(_ a: Analysis, session s: StoreSession) throws -> Analysis {
        guard a.state == "pending" || a.state == "running", let jobID = a.jobID,
              let job = try? s.job(id: jobID, tenantID: a.tenantID) else { return a }
        var out = a
        switch job.state {
        case .failed: out.state = "failed"
        case .cancelled: out.state = "cancelled"
        case .running: out.state = "running"
        default: break
        }
        return out
    }

    static func requireReady(_ a: Analysis) throws {
        guard a.state == "ready" else { throw APIError.conflict("analysis \(a.id) is \(a.state), not ready") }
    }

    static func summary(of c: AnalysisComponent) throws -> ComponentSummary {
        do { return try JSONDecoder().decode(ComponentSummary.self, from: Data(c.summary.utf8)) } catch {
            throw HTTPError(.internalServerError, message: "component \(c.index) of analysis \(c.analysisID) has an unreadable summary")
        }
    }

    /// A ready analysis and one of its components (404 for a non-integer or unknown index).
    func readComponent(id: String, index: String, tenantID: String) throws -> (Analysis, AnalysisComponent) {
        let analysis = try storeCall { try store.analysis(id: id, tenantID: tenantID) }
        guard let j = Int(index), j >= 0 else { throw APIError.notFound("component \(index) of analysis \(id)") }
        try Self.requireReady(analysis)
        let component = try storeCall { try store.analysisComponent(analysisID: id, index: j, tenantID: tenantID) }
        return (analysis, component)
    }

    /// A grid of the examples `rows` (each tile scaled to 0…255 on its own; channels averaged), 1-pixel gaps.
    static func grid(_ data: LabeledDataset, rows: [Int], height h: Int, width w: Int) -> [UInt8] {
        let channels = max(1, data.featureCount / (h * w))
        let cols = Int(Double(rows.count).squareRoot().rounded(.up))
        let gridRows = (rows.count + cols - 1) / cols
        let width = cols * (w + 1) - 1, height = gridRows * (h + 1) - 1
        var pixels = [UInt8](repeating: 0, count: width * height)
        for (t, row) in rows.enumerated() {
            let x = data.features.row(row)
            var tile = [Float](repeating: 0, count: h * w)
            for p in 0..<(h * w) {
                var s: Float = 0
                for c in 0..<channels { s += x[p * channels + c] }
                tile[p] = s / Float(channels)
            }
            let lo = tile.min() ?? 0, hi = tile.max() ?? 1, span = hi > lo ? hi - lo : 1
            let ox = (t % cols) * (w + 1), oy = (t / cols) * (h + 1)
            for y in 0..<h {
                for xx in 0..<w {
                    pixels[(oy + y) * width + ox + xx] = UInt8(max(0, min(255, ((tile[y * w + xx] - lo) / span * 255).rounded())))
                }
            }
        }
        return PNGEncoder.grayscale(width: width, height: height, pixels: pixels)
    }

    /// A guided perturbation along one component, evaluated on its top examples against random ones (both signs).
    func perturb(_ body: PerturbRequest, analysisID id: String, index: String, tenantID tenant: String) throws -> PerturbResponse {
        guard body.magnitude.isFinite, body.magnitude > 0, body.magnitude <= 1000 else {
            throw APIError.invalid("magnitude must be in (0, 1000]")
        }
        guard body.lambda > 0, body.lambda < 1 else { throw APIError.invalid("lambda must be in (0, 1)") }
        if let t = body.top, !(1...10_000).contains(t) { throw APIError.invalid("top must be in 1…10000") }
        if let r = body.random, !(1...10_000).contains(r) { throw APIError.invalid("random must be in 1…10000") }
        var targetKL: ClosedRange<Double>? = nil
        if let t = body.targetKL {
            guard t.count == 2, t[0].isFinite, t[1].isFinite, t[0] > 0, t[0] <= t[1], t[1] <= 100 else {
                throw APIError.invalid("target_kl must be [low, high] with 0 < low ≤ high ≤ 100")
            }
            targetKL = t[0]...t[1]
        }
        let (analysis, component) = try readComponent(id: id, index: index, tenantID: tenant)
        if targetKL != nil && analysis.kind != AnalysisMethod.diagonal.rawValue {
            throw APIError.invalid("target_kl searches the blend λ of diagonal analyses; this analysis is \(analysis.kind)")
        }
        guard let request = try? JSONDecoder().decode(AnalysisRequest.self, from: Data(analysis.params.utf8)),
              let summary = analysis.summary.flatMap({ try? JSONDecoder().decode(AnalysisSummary.self, from: Data($0.utf8)) }) else {
            throw HTTPError(.internalServerError, message: "analysis \(id) is unreadable")
        }
        let datasetID = body.datasetID ?? analysis.datasetID ?? ""
        let dataset = try storeCall { try store.dataset(id: datasetID, tenantID: tenant) }
        let (_, loaded) = try loadNetwork(modelID: analysis.modelID, tenantID: tenant, version: analysis.modelVersion)
        guard let network = loaded as? any SeededBackward else { throw APIError.invalid("this model kind has no per-example gradients") }
        try checkDataset(dataset, against: network.architecture, tenantID: tenant)

        // The component's top examples on that dataset: from its coefficients, or from a fit to it.
        var ranked: [Int]
        if datasetID == analysis.datasetID, let blob = component.coefficients {
            let w = FloatBlob.decode(blob)
            ranked = w.indices.sorted { (w[$0], $1) > (w[$1], $0) }.map { summary.rows[$0] }
        } else if let fit = summary.fits.last(where: { $0.datasetID == datasetID }),
                  let c = fit.components.first(where: { $0.index == component.index }) {
            ranked = c.topExamples.map(\.row)
        } else {
            throw APIError.invalid("the analysis has no coefficients on dataset \(datasetID); POST /v1/analyses/\(id)/fit with it first")
        }
        ranked = ranked.filter { $0 < dataset.examples }
        let top = Array(ranked.prefix(body.top ?? min(32, max(1, ranked.count / 4))))
        guard !top.isEmpty else { throw APIError.invalid("the component has no top examples on dataset \(datasetID)") }
        let baseline = GuidedPerturbation.sampledExamples(dataset.examples, count: min(body.random ?? 512, dataset.examples), seed: body.seed)
        // One evaluation set: the random rows, then the top rows. Its per-example gradients (about 3
        // passes) and up to 24 KL evaluations of the perturbed model run on this request's thread.
        let rows = baseline.count + top.count, work = request.perturbWork(rows: rows, of: network.architecture, parameters: network.parameterCount)
        guard let work, work <= configuration.limits.maxPredictWork else {
            throw APIError.invalid("a perturbation over \(rows) examples (\(top.count) top, \(baseline.count) random) would take "
                + "\(work.map { "\($0)" } ?? "too many") multiply-adds (per-example Fishers of \(request.usedClasses(network.architecture.outputDim)) "
                + "classes and up to 24 evaluations); the limit max_predict_work is \(configuration.limits.maxPredictWork): "
                + "ask for fewer random or top examples")
        }
        try configuration.limits.checkAnalysis(request, parameters: network.parameterCount, classes: network.architecture.outputDim,
                                               examples: baseline.count + top.count, reserved: dataset.rowsMemory(baseline.count + top.count),
                                               what: "a perturbation")
        // Only these rows are read into memory, not the whole dataset.
        let sub = try storeCall {
            try DatasetBlobReader.load(from: store, dataset: dataset, tenantID: tenant, classes: network.architecture.outputDim, rows: baseline + top)
        }
        let baseIndices = Array(0..<baseline.count), topIndices = Array(baseline.count..<(baseline.count + top.count))
        let method = AnalysisMethod(rawValue: analysis.kind) ?? .diagonal
        let pefs = try AnalysisCompute.pefs(network, data: sub, method: method,
                                            options: request.pefOptions(parameterCount: network.parameterCount)) { _ in }
        let components = try storeCall { try store.analysisComponents(analysisID: id, tenantID: tenant) }
        let kept = summary.keptColumnIndices
        var g = Matrix(rows: components.count, cols: kept.count)
        for (r, c) in components.enumerated() {
            let v = FloatBlob.decode(c.pseudoFisher)
            guard v.count == kept.count else { throw HTTPError(.internalServerError, message: "component \(c.index) is unreadable") }
            g.storage.replaceSubrange((r * kept.count)..<((r + 1) * kept.count), with: v)
        }
        guard let position = components.firstIndex(where: { $0.index == component.index }) else {
            throw APIError.notFound("component \(index) of analysis \(id)")
        }
        let m = network.parameterCount
        var offset: [Float]
        var lambda: Float? = nil, magnitude = body.magnitude, targetedKL: Double? = nil
        switch pefs {
        case .lowRank(let p):
            // A decomposition value to hold the stored components (the solver is not run: no iterations).
            var d = LRMNPEFF.fit(p, options: LRMNPEFFOptions(components: 1, gOnlyIterations: 0, jointIterations: 0))
            d.g = g; d.w = Matrix(rows: 1, cols: g.rows); d.keptColumns = kept; d.parameterCount = m
            offset = GuidedPerturbation.scaled(GuidedPerturbation.lrmDirection(d, component: position), magnitude: body.magnitude)
        case .diagonal(let p):
            var d = DNPEFF.fit(p, options: DNPEFFOptions(components: 1, iterations: 0))
            d.h = g; d.w = Matrix(rows: 1, cols: g.rows); d.keptColumns = kept; d.parameterCount = m
            let sign = GuidedPerturbation.lossGradientSign(network, data: sub, examples: topIndices)
            let direction = { (λ: Float) in
                GuidedPerturbation.dDirection(d, component: position, datasetFisher: p.datasetFisher, lossGradientSign: sign, lambda: λ)
            }
            if let targetKL {
                // npeff.md §5: δ and λ searched until the top examples' mean KL lies in the target range.
                let found = GuidedPerturbation.targetKL(network, data: sub, top: topIndices, targetKL: targetKL,
                                                        likelihood: request.likelihood, direction: direction)
                offset = found.offset; lambda = found.lambda; targetedKL = found.kl
                magnitude = offset.reduce(Float(0)) { $0 + $1 * $1 }.squareRoot()
            } else {
                offset = GuidedPerturbation.scaled(direction(body.lambda), magnitude: body.magnitude)
                lambda = body.lambda
            }
        }
        let result = GuidedPerturbation.evaluate(network, offset: offset, data: sub, top: topIndices, baseline: baseIndices,
                                                 norms: pefs.examples.norms, likelihood: request.likelihood)
        let best = result.best
        return PerturbResponse(analysisID: id, component: component.index, method: analysis.kind, datasetID: datasetID,
                               magnitude: magnitude, lambda: lambda, sign: best.sign < 0 ? -1 : 1, klRatio: finite(best.klRatio),
                               pefNormRatio: finite(best.pefNormRatio), topKL: finite(best.topKL), baselineKL: finite(best.baselineKL),
                               topAccuracy: finite(best.topAccuracy), baselineAccuracy: finite(best.baselineAccuracy),
                               originalTopAccuracy: finite(best.originalTopAccuracy), topExamples: top, randomExamples: baseline.count,
                               bySign: result.bySign.map(PerturbSignDTO.init), targetedKL: targetedKL.map(finite))
    }
}
