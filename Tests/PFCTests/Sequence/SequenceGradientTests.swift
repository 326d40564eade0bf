import Testing
@testable import Linalg
@testable import PFC

/// Hand-written backward passes of the sequence models against central finite differences.
@Suite struct SequenceGradientTests {
    /// A small batch: T steps of d features in [0, 1), B sequences, with targets at the last step
    /// or at every step (some steps without a target when `perStep`).
    static func batch(t: Int, d: Int, b: Int, classes: Int, perStep: Bool, seed: UInt64) -> SequenceBatch {
        var rng = SeededRandom(seed: seed)
        let steps = (0..<t).map { _ in rng.uniformMatrix(rows: d, cols: b) }
        var targets = [[Int]](repeating: [Int](repeating: SequenceDataset.noTarget, count: b), count: t)
        for s in 0..<t where perStep ? s != 1 : s == t - 1 {
            for j in 0..<b where !(perStep && s == 0 && j == 0) { targets[s][j] = (j + s) % classes }
        }
        return SequenceBatch(steps: steps, targets: targets, classes: classes)
    }

    static func check<M: GradientSequenceModel>(_ model: M, _ batch: SequenceBatch) -> Float {
        let r = model.lossAndGradients(batch)
        #expect(r.loss.isFinite && r.loss > 0)
        var check = GradientCheck()
        return check.worstRelativeError(parameters: model.parameters.map(\.value), gradients: r.gradients) { values in
            var m = model
            m.parameters = zip(model.parameters, values).map { Parameter(name: $0.name, value: $1, nonnegative: $0.nonnegative) }
            return m.lossAndGradients(batch).loss
        }
    }

    struct FactorizedCase: Sendable, CustomTestStringConvertible {
        var bptt: Bool, nonnegative: Bool, perStep: Bool, iterations: Int, scale: Float
        var testDescription: String { "bptt \(bptt) nonneg \(nonnegative) perStep \(perStep) N \(iterations) scale \(scale)" }
    }

    /// Signed and non-negative weights, BPTT and truncated, last-step and per-step targets. Weights of
    /// order 0.1–0.5 keep outputs O(1) so Float differences resolve the gradient; the small-weight
    /// case makes h exceed max(z), so the stop-gradient scale path is exercised.
    static let factorizedCases: [FactorizedCase] = [
        FactorizedCase(bptt: true, nonnegative: false, perStep: false, iterations: 6, scale: 0.5),
        FactorizedCase(bptt: false, nonnegative: false, perStep: false, iterations: 6, scale: 0.5),
        FactorizedCase(bptt: true, nonnegative: true, perStep: true, iterations: 5, scale: 0.5),
        FactorizedCase(bptt: false, nonnegative: true, perStep: true, iterations: 5, scale: 0.5),
        FactorizedCase(bptt: true, nonnegative: true, perStep: false, iterations: 8, scale: 0.05),
    ]

    @Test(arguments: factorizedCases)
    func factorizedRNNGradient(_ c: FactorizedCase) {
        var rnn = FactorizedRNN(inputDim: 4, hidden: 5, outputDim: 3, iterations: c.iterations, nonnegative: c.nonnegative,
                                bptt: c.bptt, seed: 1)
        var rng = SeededRandom(seed: 2)
        rnn.parameters = rnn.parameters.map {
            let lo: Float = c.nonnegative ? c.scale * 0.05 : -c.scale
            return Parameter(name: $0.name, value: rng.uniformMatrix(rows: $0.value.rows, cols: $0.value.cols, low: lo, high: c.scale),
                             nonnegative: $0.nonnegative)
        }
        let batch = Self.batch(t: 4, d: 4, b: 3, classes: 3, perStep: c.perStep, seed: 3)
        let probe = rnn.run(batch.steps, keepTape: true)
        if c.scale < 0.1 { #expect(probe.stopGradients.contains { $0.scales.contains { $0 < 1 } }) }
        rnn.frozen = probe.stopGradients
        rnn.detached = [Matrix(rows: 3, cols: 5)] + probe.codes.dropLast()
        let err = Self.check(rnn, batch)
        #expect(err < 2e-2, "worst relative error \(err)")
    }

    @Test func bpttAndTruncatedGradientsDiffer() {
        var rnn = FactorizedRNN(inputDim: 4, hidden: 5, outputDim: 3, iterations: 5, bptt: true, initScale: 0.5, seed: 4)
        let batch = Self.batch(t: 3, d: 4, b: 3, classes: 3, perStep: false, seed: 5)
        let full = rnn.lossAndGradients(batch)
        rnn.bptt = false
        let cut = rnn.lossAndGradients(batch)
        #expect(full.loss == cut.loss)
        #expect(full.gradients[0] == cut.gradients[0]) // W_y only sees the last step directly
        #expect(full.gradients[2] != cut.gradients[2])
    }

    @Test(arguments: [true, false])
    func vanillaRNNGradient(bptt: Bool) {
        var rnn = VanillaRNN(inputDim: 4, hidden: 6, outputDim: 3, bptt: bptt, seed: 7)
        for perStep in [false, true] {
            let batch = Self.batch(t: 4, d: 4, b: 3, classes: 3, perStep: perStep, seed: 8)
            rnn.detached = nil
            rnn.detached = [Matrix(rows: 6, cols: 3)] + rnn.run(batch.steps).map(\.h).dropLast()
            let err = Self.check(rnn, batch)
            #expect(err < 1e-2, "worst relative error \(err) (perStep \(perStep))")
        }
    }

    /// The warm start from the floor is the block's own inference; the start's gradient is checked
    /// by finite differences through the BPTT cases above.
    @Test func warmStartFromFloorMatchesBlockInference() {
        var rng = SeededRandom(seed: 9)
        let w = rng.uniformMatrix(rows: 7, cols: 5, low: 0.01, high: 0.5)
        let x = rng.uniformMatrix(rows: 7, cols: 4)
        let s = FISTASettings(iterations: 12)
        let a = FISTAInference.forward(wx: w, x: x, settings: s, keepTape: false).hT
        let b = WarmStartFISTA.forward(w: w, x: x, start: nil, settings: s, frozen: nil, keepTape: false).hT
        #expect(a == b)
    }
}
