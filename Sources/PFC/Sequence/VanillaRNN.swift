// VanillaRNN: the baseline of research/pfc.md §2.2, h_t = GELU(W_hh·LN(h_{t−1}) + W_xh·x_t + b_h),
// y_t = W_hy·h_t + b_y, trained on MSE with or without BPTT.
import Foundation
import Linalg

/// The vanilla RNN baseline (official `VanillaRNN` with the state layer norm on and the input layer
/// norm off, as in its copy-task and sequential-MNIST configs; biases on, its default).
///
/// `h_t = GELU(W_hh·LN(h_{t−1}) + b_h + W_xh·x_t)`, `y_t = W_hy·h_t + b_y`, h_{−1} = 0. LN has no
/// affine parameters (normalises each example's h over its H entries, ε = 1e-5). Layout: h is H×B.
/// The loss is the label MSE of `SequenceLosses.labelMSE`. Without `bptt`, h_{t−1} is detached.
public struct VanillaRNN: GradientSequenceModel {
    /// H×H recurrent weights.
    public var whh: Matrix
    /// H×1 hidden bias.
    public var bh: Matrix
    /// H×d input weights.
    public var wxh: Matrix
    /// C×H output weights.
    public var why: Matrix
    /// C×1 output bias.
    public var by: Matrix
    /// Backprop through time; false detaches h_{t−1} at every step.
    public var bptt: Bool
    /// Test hook: recorded h_{t−1} per step, used as the (detached) recurrent input without BPTT,
    /// so finite differences differentiate the function the truncated backward pass does.
    var detached: [Matrix]? = nil

    static let epsilon: Float = 1e-5

    /// A freshly initialised RNN (PyTorch `nn.Linear` init: U(±1/√fan_in)).
    public init(inputDim: Int, hidden: Int, outputDim: Int, bptt: Bool = true, seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        let sh = 1 / Float(hidden).squareRoot(), sx = 1 / Float(inputDim).squareRoot()
        whh = rng.uniformMatrix(rows: hidden, cols: hidden, low: -sh, high: sh)
        bh = rng.uniformMatrix(rows: hidden, cols: 1, low: -sh, high: sh)
        wxh = rng.uniformMatrix(rows: hidden, cols: inputDim, low: -sx, high: sx)
        why = rng.uniformMatrix(rows: outputDim, cols: hidden, low: -sh, high: sh)
        by = rng.uniformMatrix(rows: outputDim, cols: 1, low: -sh, high: sh)
        self.bptt = bptt
    }

    public var parameters: [Parameter] {
        get {
            [Parameter(name: "whh", value: whh, nonnegative: false), Parameter(name: "bh", value: bh, nonnegative: false),
             Parameter(name: "wxh", value: wxh, nonnegative: false), Parameter(name: "why", value: why, nonnegative: false),
             Parameter(name: "by", value: by, nonnegative: false)]
        }
        set { whh = newValue[0].value; bh = newValue[1].value; wxh = newValue[2].value; why = newValue[3].value; by = newValue[4].value }
    }

    /// Layer norm of every column (no affine parameters); returns the output and 1/σ per column.
    static func layerNorm(_ h: Matrix) -> (out: Matrix, inverseStd: [Float]) {
        let n = h.rows, b = h.cols
        var out = h
        var inv = [Float](repeating: 0, count: b)
        for j in 0..<b {
            var mean: Float = 0
            for i in 0..<n { mean += h[i, j] }
            mean /= Float(n)
            var v: Float = 0
            for i in 0..<n { let e = h[i, j] - mean; v += e * e }
            let s = 1 / (v / Float(n) + epsilon).squareRoot()
            inv[j] = s
            for i in 0..<n { out[i, j] = (h[i, j] - mean) * s }
        }
        return (out, inv)
    }

    /// Backward of `layerNorm`: ∂L/∂h = (1/σ)(ḡ − mean(ḡ) − n̂·mean(ḡ⊙n̂)) per column.
    static func layerNormBackward(_ g: Matrix, normalized: Matrix, inverseStd: [Float]) -> Matrix {
        let n = g.rows, b = g.cols
        var out = Matrix(rows: n, cols: b)
        for j in 0..<b {
            var mg: Float = 0, mgn: Float = 0
            for i in 0..<n { mg += g[i, j]; mgn += g[i, j] * normalized[i, j] }
            mg /= Float(n); mgn /= Float(n)
            for i in 0..<n { out[i, j] = inverseStd[j] * (g[i, j] - mg - normalized[i, j] * mgn) }
        }
        return out
    }

    struct Step {
        var normalized: Matrix, inverseStd: [Float], pre: Matrix, h: Matrix, y: Matrix
    }

    func run(_ steps: [Matrix]) -> [Step] {
        let b = steps.first?.cols ?? 0
        var h = Matrix(rows: whh.rows, cols: b)
        var out = [Step]()
        for (t, x) in steps.enumerated() {
            if !bptt, let fixed = detached { h = fixed[t] }
            let (ln, inv) = Self.layerNorm(h)
            var pre = Matrix.product(whh, ln)
            pre.accumulateProduct(wxh, x)
            pre.addColumnVector(bh.storage)
            var hn = pre
            for i in 0..<hn.count { hn.storage[i] = MLPClassifier.gelu(pre.storage[i]) }
            var y = Matrix.product(why, hn)
            y.addColumnVector(by.storage)
            out.append(Step(normalized: ln, inverseStd: inv, pre: pre, h: hn, y: y))
            h = hn
        }
        return out
    }

    public func predict(_ steps: [Matrix]) -> [Matrix] { run(steps).map(\.y) }

    public func lossAndGradients(_ batch: SequenceBatch) -> SequenceGradients {
        let trace = run(batch.steps)
        let outputs = trace.map(\.y)
        let (loss, gradOutputs) = SequenceLosses.labelMSE(outputs: outputs, targets: batch.targets)
        var gWhh = Matrix(rows: whh.rows, cols: whh.cols), gbh = Matrix(rows: bh.rows, cols: 1)
        var gWxh = Matrix(rows: wxh.rows, cols: wxh.cols), gWhy = Matrix(rows: why.rows, cols: why.cols)
        var gby = Matrix(rows: by.rows, cols: 1)
        var carry = Matrix(rows: whh.rows, cols: batch.size) // ∂L/∂h_t from step t+1
        for t in stride(from: batch.length - 1, through: 0, by: -1) {
            let s = trace[t]
            var gh = carry
            if let gy = gradOutputs[t] {
                gWhy.accumulateProduct(gy, s.h, transB: .transposed)
                gby.add(Matrix(rows: gy.rows, cols: 1, storage: gy.rowSums()))
                gh.accumulateProduct(why, gy, transA: .transposed)
            }
            var gPre = gh
            for i in 0..<gPre.count { gPre.storage[i] *= MLPClassifier.geluDerivative(s.pre.storage[i]) }
            gWhh.accumulateProduct(gPre, s.normalized, transB: .transposed)
            gWxh.accumulateProduct(gPre, batch.steps[t], transB: .transposed)
            gbh.add(Matrix(rows: gPre.rows, cols: 1, storage: gPre.rowSums()))
            if bptt && t > 0 {
                let gLN = Matrix.product(whh, gPre, transA: .transposed)
                carry = Self.layerNormBackward(gLN, normalized: s.normalized, inverseStd: s.inverseStd)
            } else {
                carry = Matrix(rows: whh.rows, cols: batch.size)
            }
        }
        return SequenceGradients(loss: loss, outputs: outputs, gradients: [gWhh, gbh, gWxh, gWhy, gby])
    }
}
