// SequenceClassifier: a recurrent model behind the `Network` protocol, so the trainer, model files,
// the job queue and the API serve it like any classifier. An example is its T steps of d features
// laid out flat (step after step); the label is predicted at the last step.
import Linalg

/// The factorized RNN or the vanilla RNN as a `Network` over flat (T·d)×B batches.
public struct SequenceClassifier: Network {
    public let architecture: Architecture
    /// The wrapped recurrent model.
    public var model: any GradientSequenceModel

    /// A freshly initialised recurrent classifier of `architecture` (`basis` is the hidden size).
    public init(architecture a: Architecture, seed: UInt64) {
        architecture = a
        switch a.kind {
        case .rnn:
            model = VanillaRNN(inputDim: a.inputDim, hidden: a.basis, outputDim: a.outputDim, bptt: a.bptt, seed: seed)
        default:
            model = FactorizedRNN(inputDim: a.inputDim, hidden: a.basis, outputDim: a.outputDim, iterations: a.iterations,
                                  nonnegative: a.nonnegative, bptt: a.bptt, seed: seed)
        }
    }

    public var parameters: [Parameter] {
        get { model.parameters }
        set { model.parameters = newValue }
    }

    /// The T steps (each d×B) of a flat (T·d)×B batch.
    public func steps(_ x: Matrix) -> [Matrix] {
        let d = architecture.inputDim, b = x.cols
        precondition(x.rows == d * architecture.sequenceLength, "expected \(d * architecture.sequenceLength) features")
        return (0..<architecture.sequenceLength).map { t in
            Matrix(rows: d, cols: b, storage: Array(x.storage[(t * d * b)..<((t + 1) * d * b)]))
        }
    }

    public func predict(_ x: Matrix) -> Matrix { model.predict(steps(x)).last! }

    /// Outputs y_t (C×B) at every step.
    public func predictSteps(_ x: Matrix) -> [Matrix] { model.predict(steps(x)) }

    /// Per-step targets of a batch of B sequences: B labels go to the last step; B·T labels
    /// (example after example) are one per step, −1 for a step without a target.
    public func targets(_ labels: [Int], batch b: Int) -> [[Int]] {
        let t = architecture.sequenceLength
        var targets = [[Int]](repeating: [Int](repeating: SequenceDataset.noTarget, count: b), count: t)
        if labels.count == b * t && t > 1 {
            for j in 0..<b { for s in 0..<t { targets[s][j] = labels[j * t + s] } }
        } else {
            precondition(labels.count == b, "expected \(b) labels, or \(b * t) (one per step)")
            targets[t - 1] = labels
        }
        return targets
    }

    public func lossAndGradients(x: Matrix, labels: [Int]) -> LossAndGradients {
        let targets = targets(labels, batch: x.cols)
        let g = model.lossAndGradients(SequenceBatch(steps: steps(x), targets: targets, classes: architecture.outputDim))
        let perStep = labels.count != x.cols
        return LossAndGradients(loss: g.loss, outputs: g.outputs.last!, gradients: g.gradients,
                                targetCounts: perStep ? SequenceLosses.correct(outputs: g.outputs, targets: targets) : nil)
    }

    /// The label MSE over every target (the last step, or each labelled step) and the accuracy over them.
    public func evaluate(x: Matrix, labels: [Int]) -> (loss: Float, accuracy: Float) {
        let targets = targets(labels, batch: x.cols)
        let outputs = predictSteps(x)
        let (right, total) = SequenceLosses.correct(outputs: outputs, targets: targets)
        return (SequenceLosses.labelMSE(outputs: outputs, targets: targets).loss, total > 0 ? Float(right) / Float(total) : 0)
    }

    /// The factorized RNN's codes h_t (each B×K, one row per example) and outputs, for explanations;
    /// nil for the vanilla RNN.
    public func codes(_ x: Matrix) -> (codes: [Matrix], outputs: [Matrix], wy: Matrix)? {
        guard let f = model as? FactorizedRNN else { return nil }
        let trace = f.run(steps(x), keepTape: false)
        return (trace.codes, trace.outputs, f.wy)
    }
}
