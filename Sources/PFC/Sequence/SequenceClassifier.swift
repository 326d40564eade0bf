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

    public func lossAndGradients(x: Matrix, labels: [Int]) -> LossAndGradients {
        let t = architecture.sequenceLength
        var targets = [[Int]](repeating: [Int](repeating: SequenceDataset.noTarget, count: labels.count), count: t)
        targets[t - 1] = labels
        let g = model.lossAndGradients(SequenceBatch(steps: steps(x), targets: targets, classes: architecture.outputDim))
        return LossAndGradients(loss: g.loss, outputs: g.outputs.last!, gradients: g.gradients)
    }

    /// The factorized RNN's codes h_t (each B×K, one row per example) and outputs, for explanations;
    /// nil for the vanilla RNN.
    public func codes(_ x: Matrix) -> (codes: [Matrix], outputs: [Matrix], wy: Matrix)? {
        guard let f = model as? FactorizedRNN else { return nil }
        let trace = f.run(steps(x), keepTape: false)
        return (trace.codes, trace.outputs, f.wy)
    }
}
