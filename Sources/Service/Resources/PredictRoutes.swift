// PredictRoutes: predictions with per-example explanations (the basis vectors that drove them).
import Dispatch
import Foundation
import HTTP
import Linalg
import PFC
import Storage

/// `POST /v1/models/{id}/predict`: needs the models, the request limits and the batcher.
struct PredictController: RouteCollection {
    let models: ModelLoader
    let limits: ServiceLimits
    /// Runs the predictions (`Predict/PredictBatcher.swift`).
    let batcher: PredictBatcher

    func register(on r: inout Router) {
        r.post("/v1/models/{id}/predict") { [self] request, ctx in
            let tenant = try ctx.tenantID(), id = try request.pathParameter("id")
            let body = try Self.body(request, maxBytes: limits.maxRequestBytes)
            let (version, network) = try models.network(modelID: id, tenantID: tenant, version: body.version)
            let arch = network.architecture
            let inputs = body.inputs
            guard !inputs.isEmpty, inputs.count <= limits.maxPredictRows else {
                throw APIError.invalid("inputs must have 1…\(limits.maxPredictRows) rows")
            }
            let top = body.top ?? 5
            guard (1...100).contains(top) else { throw APIError.invalid("top must be in 1…100") }
            let everyStep = body.everyStep ?? false
            if everyStep && !arch.kind.isSequence {
                throw APIError.invalid("every_step applies to the recurrent kinds (factorized_rnn, rnn); this model is \(arch.kind.rawValue)")
            }
            if let nested = body.nestedForm, !arch.kind.isSequence || nested.steps != arch.sequenceLength || nested.stepFeatures != arch.inputDim {
                throw APIError.invalid("inputs are nested as \(nested.description) numbers but the model reads "
                    + (arch.kind.isSequence ? "sequence_length \(arch.sequenceLength) × input_dim \(arch.inputDim)" : "flat rows of input_dim \(arch.inputDim)"))
            }
            // Every row's width first: the matrix below is then no larger than the numbers the body held
            // (an empty row for a 10⁹-feature model must not allocate 4 GB).
            if let j = inputs.firstIndex(where: { $0.count != arch.featureCount }) {
                let want = arch.kind.isSequence ? "sequence_length × input_dim = \(arch.featureCount) (steps one after another)" : "input_dim is \(arch.inputDim)"
                throw APIError.invalid("inputs[\(j)] has \(inputs[j].count) values but the model's \(want)")
            }
            try limits.checkInference(rows: inputs.count, of: arch, what: "a prediction")
            var x = Matrix(rows: arch.featureCount, cols: inputs.count)
            for (j, row) in inputs.enumerated() {
                for (i, v) in row.enumerated() {
                    guard v.isFinite else { throw APIError.invalid("inputs[\(j)][\(i)] is not a finite number") }
                    if arch.nonnegative && v < 0 {
                        throw APIError.invalid("inputs[\(j)][\(i)] is negative; this PFC model needs features ≥ 0")
                    }
                    x[i, j] = v
                }
            }
            // Version 0 is the random initialization: answering from it as if it were a model misleads.
            if body.version == nil && version == 0 {
                throw HTTPError(.conflict, code: "not_trained", message: "model \(id) is not trained yet (its only version is 0, the random "
                    + "initialization); train it (POST /v1/models/{id}/train or /tasks), or ask for \"version\": 0 explicitly")
            }
            // Validated: the prediction runs on the batcher's compute threads, never on this handler
            // thread. It is merged with other queued requests of the same version, top and every_step
            // into one FISTA batch (large requests are cut into parts of the batch size, which also
            // bound the FISTA buffers), and answered later, with exactly its own columns.
            let answer = DeferredResponse()
            let ticket = PredictTicket(network: network, version: version, top: top, everyStep: everyStep,
                                       token: Self.token(ctx, timeout: batcher.options.timeout), answer: answer,
                                       parts: (x.cols + batcher.partRows - 1) / batcher.partRows)
            try batcher.submit(ticket, key: PredictBatchKey(modelID: id, version: version, top: top, everyStep: everyStep), x: x)
            return .deferred(answer)
        }
    }

    /// The request body: the common form read in one pass (`PredictRequestParser`), anything else
    /// by the general decoder (with its error messages).
    static func body(_ request: Request, maxBytes: Int) throws -> PredictBody {
        try JSONCoding.requireJSON(request)
        let bytes = try request.body.collect(maxBytes: maxBytes)
        if let fast = PredictRequestParser.parse(bytes) { return fast }
        return PredictBody(try JSONCoding.decode(PredictRequest.self, from: Data(bytes)))
    }

    /// Raised when the client is gone (or shutdown closed its connection), or `timeout` after the
    /// request arrived: a deferred answer has no handler deadline, so the prediction keeps its own.
    static func token(_ ctx: RequestContext, timeout: Duration?) -> CancellationToken {
        let base = ctx.computeToken
        guard let timeout else { return base }
        let left = timeout - (ContinuousClock.now - ctx.receivedAt)
        let c = left.components
        let ns = max(0, c.seconds) &* 1_000_000_000 &+ max(0, c.attoseconds / 1_000_000_000)
        let deadline = DispatchTime.now().uptimeNanoseconds &+ UInt64(clamping: ns)
        return CancellationToken { base.isCancelled || DispatchTime.now().uptimeNanoseconds > deadline }
    }

    /// Rows per forward pass of a prediction.
    static let predictChunkRows = 512

    /// For the factorized RNN: per step t, the top components of h_t by h_t[k]·W_y[ŷ, k] (`block` is
    /// the step), ŷ the final prediction or, with `everyStep`, step t's own; the vanilla RNN has no
    /// basis vectors to show.
    /// Also returns the outputs of every step (one forward pass serves all three).
    static func explainSteps(_ n: SequenceClassifier, x: Matrix, top: Int, everyStep: Bool) -> (Matrix, [[ExplanationDTO]], [Matrix]) {
        guard let trace = n.codes(x) else {
            let steps = n.predictSteps(x)
            return (steps.last!, Array(repeating: [], count: x.cols), steps)
        }
        let outputs = trace.outputs.last!
        let final = outputs.columnArgmax()
        let perStep = everyStep ? trace.outputs.map { $0.columnArgmax() } : Array(repeating: final, count: trace.outputs.count)
        let k = trace.wy.cols
        if ComputeCancellation.current?.isCancelled == true { return (outputs, Array(repeating: [], count: x.cols), trace.outputs) }
        let explanations = (0..<x.cols).map { b -> [ExplanationDTO] in
            trace.codes.enumerated().flatMap { t, hT in
                topContributions(count: top, of: k) { j in
                    ExplanationDTO(block: t, component: j, activation: hT[b, j], contribution: hT[b, j] * trace.wy[perStep[t][b], j])
                }
            }
        }
        return (outputs, explanations, trace.outputs)
    }

    /// The `count` explanations of largest contribution among `item(0..<k)`, largest first (ties:
    /// lower component first), kept in a small sorted buffer instead of sorting all K.
    static func topContributions(count: Int, of k: Int, _ item: (Int) -> ExplanationDTO) -> [ExplanationDTO] {
        var best: [ExplanationDTO] = []
        best.reserveCapacity(count + 1)
        for j in 0..<k {
            let e = item(j)
            if best.count == count, let last = best.last, !(e.contribution > last.contribution) { continue }
            let at = best.firstIndex { e.contribution > $0.contribution } ?? best.count
            best.insert(e, at: at)
            if best.count > count { best.removeLast() }
        }
        return best
    }

    /// Outputs and, for PFC kinds, each example's top basis vectors by contribution h_k·W_y[ŷ, k]
    /// in the block that produces the output (the last block).
    static func explain(_ network: any Network, x: Matrix, top: Int, everyStep: Bool = false) -> (Matrix, [[ExplanationDTO]], [Matrix]?) {
        if let n = network as? SequenceClassifier {
            let (outputs, explanations, steps) = explainSteps(n, x: x, top: top, everyStep: everyStep)
            return (outputs, explanations, steps)
        }
        // The block that produces the output is the last one (Network.blockActivations).
        guard let act = network.blockActivations(x).last, let wy = network.pfcBlocks.last?.wy else {
            return (network.predict(x), Array(repeating: [], count: x.cols), nil)
        }
        let block = network.pfcBlocks.count - 1
        // A cancelled forward pass is discarded by the caller: skip explaining it.
        if ComputeCancellation.current?.isCancelled == true { return (act.y, Array(repeating: [], count: x.cols), nil) }
        let predictions = act.y.columnArgmax()
        let k = wy.cols
        let explanations = (0..<x.cols).map { b -> [ExplanationDTO] in
            let c = predictions[b]
            return topContributions(count: top, of: k) { j in
                ExplanationDTO(block: block, component: j, activation: act.hT[b, j], contribution: act.hT[b, j] * wy[c, j])
            }
        }
        return (act.y, explanations, nil)
    }
}
