// PFCClassifier: one PFC block as a classifier (research/pfc.md §1).
import Linalg

/// A one-block PFC classifier: h from x by FISTA, ŷ = W_y h.
public struct PFCClassifier: Network {
    public let architecture: Architecture
    /// The block.
    public var block: PFCBlock

    /// A freshly initialised classifier.
    public init(architecture: Architecture, rng: inout SeededRandom) {
        self.architecture = architecture
        self.block = PFCBlock(inputDim: architecture.inputDim, outputDim: architecture.outputDim, basis: architecture.basis,
                              settings: FISTASettings(iterations: architecture.iterations), rng: &rng)
    }

    public var parameters: [Parameter] {
        get {
            [Parameter(name: "wx", value: block.wx, nonnegative: architecture.nonnegative),
             Parameter(name: "wy", value: block.wy, nonnegative: architecture.nonnegative)]
        }
        set { block.wx = newValue[0].value; block.wy = newValue[1].value }
    }

    public func predict(_ x: Matrix) -> Matrix { block.forward(x, keepTape: false).y }

    /// The block's activation for explanations: Hᵀ (B×K) and ŷ.
    public func activation(_ x: Matrix) -> PFCBlock.Activation { block.forward(x, keepTape: false) }

    /// The one block.
    public var pfcBlocks: [PFCBlock] { [block] }
    /// The block's activation (its `y` is the output).
    public func blockActivations(_ x: Matrix) -> [PFCBlock.Activation] { [activation(x)] }

    /// The training objective without gradients, with the accuracy: for `images_labels_mse` the
    /// reconstruction term too, as the official code's validation reports the model's loss
    /// (`y_pred, loss = network(x, y)` in `evaluate_model`; research/pfc.md §1.3), so early stopping
    /// and the kept epoch follow the objective trained.
    public func evaluate(x: Matrix, labels: [Int]) -> (loss: Float, accuracy: Float) {
        let withImages = architecture.loss == .imagesLabelsMSE
        let lambda = architecture.labelLossWeight
        let act = block.forward(x, keepTape: false, reconstruct: withImages)
        var loss = Losses.outputLoss(architecture.loss, outputs: act.y, labels: labels, labelWeight: lambda).loss
        if withImages, let rec = act.reconstruction { loss += Losses.mse(rec, x, weight: 1 - lambda).loss }
        return (loss, Losses.accuracy(act.y, labels: labels))
    }

    public func lossAndGradients(x: Matrix, labels: [Int]) -> LossAndGradients {
        lossAndGradients(x: x, labels: labels, gradientColumns: nil)
    }

    /// With `columns`, ∂L/∂W_x is formed on those columns only (zero elsewhere); ∂L/∂W_y is complete.
    public func lossAndGradients(x: Matrix, labels: [Int], gradientColumns columns: Range<Int>?) -> LossAndGradients {
        let withImages = architecture.loss == .imagesLabelsMSE
        let lambda = architecture.labelLossWeight
        var act = block.forward(x, keepTape: true, reconstruct: withImages)
        var (loss, gradY) = Losses.outputLoss(architecture.loss, outputs: act.y, labels: labels, labelWeight: lambda)
        var gradRec: Matrix? = nil
        if withImages, let rec = act.reconstruction {
            let (l, g) = Losses.mse(rec, x, weight: 1 - lambda)
            loss += l
            gradRec = g
        }
        let y = act.y
        let g = block.backward(&act, x: x, gradY: gradY, gradReconstruction: gradRec, columns: columns)
        gradY = Matrix(rows: 0, cols: 0)
        return LossAndGradients(loss: loss, outputs: y, gradients: [g.gradWx, g.gradWy])
    }
}
