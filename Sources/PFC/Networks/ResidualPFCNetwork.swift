// ResidualPFCNetwork: two PFC blocks with a subtractive skip connection (research/pfc.md §2.1).
import Linalg

/// Block 1 (d→d) reconstructs the input, block 2 classifies the residual:
/// `y1 = W_y1 h1(x)`, `r = max(x − y1, 1e-5)`, `ŷ = W_y2 h2(r)`.
/// With `images_labels_mse` the loss is `MSE(ŷ,y) + MSE(W_x1 h1, x) + MSE(W_x2 h2, r)` (unweighted, as in the code).
public struct ResidualPFCNetwork: Network {
    public let architecture: Architecture
    /// The reconstructing block (W_y1 is d×K).
    public var first: PFCBlock
    /// The classifying block.
    public var second: PFCBlock

    /// A freshly initialised network with K1 = K2 = `basis`.
    public init(architecture: Architecture, rng: inout SeededRandom) {
        self.architecture = architecture
        let s = FISTASettings(iterations: architecture.iterations)
        first = PFCBlock(inputDim: architecture.inputDim, outputDim: architecture.inputDim, basis: architecture.basis, settings: s, rng: &rng)
        second = PFCBlock(inputDim: architecture.inputDim, outputDim: architecture.outputDim, basis: architecture.basis, settings: s, rng: &rng)
    }

    public var parameters: [Parameter] {
        get {
            let nn = architecture.nonnegative
            return [Parameter(name: "wx1", value: first.wx, nonnegative: nn), Parameter(name: "wy1", value: first.wy, nonnegative: nn),
                    Parameter(name: "wx2", value: second.wx, nonnegative: nn), Parameter(name: "wy2", value: second.wy, nonnegative: nn)]
        }
        set {
            first.wx = newValue[0].value; first.wy = newValue[1].value
            second.wx = newValue[2].value; second.wy = newValue[3].value
        }
    }

    func residual(_ x: Matrix, _ y1: Matrix) -> Matrix {
        var r = x
        r.add(y1, scaledBy: -1)
        r.clampMin(first.settings.floor)
        return r
    }

    public func predict(_ x: Matrix) -> Matrix {
        let a1 = first.forward(x, keepTape: false)
        return second.forward(residual(x, a1.y), keepTape: false).y
    }

    /// The reconstructing block, then the classifying one.
    public var pfcBlocks: [PFCBlock] { [first, second] }
    /// Both blocks' activations (`activations(_:)`).
    public func blockActivations(_ x: Matrix) -> [PFCBlock.Activation] { activations(x) }

    /// Both blocks' activations, for explanations.
    public func activations(_ x: Matrix) -> [PFCBlock.Activation] {
        let a1 = first.forward(x, keepTape: false)
        return [a1, second.forward(residual(x, a1.y), keepTape: false)]
    }

    /// The training objective without gradients (both reconstructions for `images_labels_mse`), with
    /// the accuracy: what validation scores, as `PFCClassifier.evaluate`.
    public func evaluate(x: Matrix, labels: [Int]) -> (loss: Float, accuracy: Float) {
        let withImages = architecture.loss == .imagesLabelsMSE
        let a1 = first.forward(x, keepTape: false, reconstruct: withImages)
        let r = residual(x, a1.y)
        let a2 = second.forward(r, keepTape: false, reconstruct: withImages)
        var loss = Losses.outputLoss(architecture.loss, outputs: a2.y, labels: labels, labelWeight: 1).loss
        if withImages, let rec1 = a1.reconstruction, let rec2 = a2.reconstruction {
            loss += Losses.mse(rec1, x).loss + Losses.mse(rec2, r).loss
        }
        return (loss, Losses.accuracy(a2.y, labels: labels))
    }

    public func lossAndGradients(x: Matrix, labels: [Int]) -> LossAndGradients {
        lossAndGradients(x: x, labels: labels, gradientColumns: nil)
    }

    /// With `columns`, both blocks' ∂L/∂W_x are formed on those columns only (zero elsewhere).
    public func lossAndGradients(x: Matrix, labels: [Int], gradientColumns columns: Range<Int>?) -> LossAndGradients {
        let withImages = architecture.loss == .imagesLabelsMSE
        var a1 = first.forward(x, keepTape: true, reconstruct: withImages)
        let r = residual(x, a1.y)
        var a2 = second.forward(r, keepTape: true, reconstruct: withImages)
        var (loss, gradOut) = Losses.outputLoss(architecture.loss, outputs: a2.y, labels: labels, labelWeight: 1)
        var gradRec1: Matrix? = nil, gradRec2: Matrix? = nil
        if withImages, let rec1 = a1.reconstruction, let rec2 = a2.reconstruction {
            let l1 = Losses.mse(rec1, x), l2 = Losses.mse(rec2, r)
            loss += l1.loss + l2.loss
            gradRec1 = l1.grad
            gradRec2 = l2.grad
        }
        let out = a2.y
        let g2 = second.backward(&a2, x: r, gradY: gradOut, gradReconstruction: gradRec2, columns: columns)
        var gradR = g2.gradX
        if let g = gradRec2 { gradR.add(g, scaledBy: -1) } // r is also the target of MSE(W_x2 h2, r)
        // r = max(x − y1, floor): ∂r/∂y1 = −[x − y1 ≥ floor]
        var gradY1 = Matrix(rows: gradR.rows, cols: gradR.cols)
        let floor = first.settings.floor
        for i in 0..<gradR.count where x.storage[i] - a1.y.storage[i] >= floor { gradY1.storage[i] = -gradR.storage[i] }
        let g1 = first.backward(&a1, x: x, gradY: gradY1, gradReconstruction: gradRec1, columns: columns)
        gradOut = Matrix(rows: 0, cols: 0)
        return LossAndGradients(loss: loss, outputs: out, gradients: [g1.gradWx, g1.gradWy, g2.gradWx, g2.gradWy])
    }
}
