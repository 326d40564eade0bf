// MLPClassifier: the baseline of research/pfc.md §1.3, Linear(d→h) → GELU → Linear(h→C).
import Foundation
import Linalg

/// The MLP baseline with biases and exact (erf) GELU, initialised like PyTorch's `nn.Linear`
/// (weights and biases ~ U(−1/√fan_in, 1/√fan_in)).
public struct MLPClassifier: Network {
    public let architecture: Architecture
    var w1: Matrix, b1: Matrix, w2: Matrix, b2: Matrix

    /// A freshly initialised MLP with hidden width `architecture.basis`.
    public init(architecture: Architecture, rng: inout SeededRandom) {
        self.architecture = architecture
        let d = architecture.inputDim, h = architecture.basis, c = architecture.outputDim
        let s1 = 1 / Float(d).squareRoot(), s2 = 1 / Float(h).squareRoot()
        w1 = rng.uniformMatrix(rows: h, cols: d, low: -s1, high: s1)
        b1 = rng.uniformMatrix(rows: h, cols: 1, low: -s1, high: s1)
        w2 = rng.uniformMatrix(rows: c, cols: h, low: -s2, high: s2)
        b2 = rng.uniformMatrix(rows: c, cols: 1, low: -s2, high: s2)
    }

    public var parameters: [Parameter] {
        get {
            [Parameter(name: "w1", value: w1, nonnegative: false), Parameter(name: "b1", value: b1, nonnegative: false),
             Parameter(name: "w2", value: w2, nonnegative: false), Parameter(name: "b2", value: b2, nonnegative: false)]
        }
        set { w1 = newValue[0].value; b1 = newValue[1].value; w2 = newValue[2].value; b2 = newValue[3].value }
    }

    static func gelu(_ x: Float) -> Float { 0.5 * x * (1 + erff(x * 0.70710678)) }
    static func geluDerivative(_ x: Float) -> Float {
        0.5 * (1 + erff(x * 0.70710678)) + x * expf(-0.5 * x * x) * 0.39894228
    }

    func hidden(_ x: Matrix) -> (pre: Matrix, post: Matrix) {
        var pre = Matrix.product(w1, x)
        pre.addColumnVector(b1.storage)
        var post = pre
        for i in 0..<post.count { post.storage[i] = Self.gelu(pre.storage[i]) }
        return (pre, post)
    }

    public func predict(_ x: Matrix) -> Matrix {
        var y = Matrix.product(w2, hidden(x).post)
        y.addColumnVector(b2.storage)
        return y
    }

    public func lossAndGradients(x: Matrix, labels: [Int]) -> LossAndGradients {
        let (pre, post) = hidden(x)
        var y = Matrix.product(w2, post)
        y.addColumnVector(b2.storage)
        let (loss, gy) = Losses.outputLoss(architecture.loss, outputs: y, labels: labels, labelWeight: 1)
        let gw2 = Matrix.product(gy, post, transB: .transposed)
        let gb2 = Matrix(rows: gy.rows, cols: 1, storage: gy.rowSums())
        var gPre = Matrix.product(w2, gy, transA: .transposed)
        for i in 0..<gPre.count { gPre.storage[i] *= Self.geluDerivative(pre.storage[i]) }
        let gw1 = Matrix.product(gPre, x, transB: .transposed)
        let gb1 = Matrix(rows: gPre.rows, cols: 1, storage: gPre.rowSums())
        return LossAndGradients(loss: loss, outputs: y, gradients: [gw1, gb1, gw2, gb2])
    }
}
