// Network: what the trainer, the CLI and the server need from any model kind.
import Linalg

/// The model families the engine trains.
public enum ModelKind: String, Sendable, Codable, CaseIterable {
    /// One PFC block classifier (research/pfc.md §1).
    case pfc
    /// Two PFC blocks with the subtractive skip connection (research/pfc.md §2.1).
    case pfc2
    /// The MLP baseline: Linear → GELU → Linear (research/pfc.md §1.3).
    case mlp
    /// The factorized RNN trained by backprop (research/pfc.md §2.2); `inputDim` is the per-step d.
    case factorizedRNN = "factorized_rnn"
    /// The vanilla RNN baseline (research/pfc.md §2.2); `inputDim` is the per-step d.
    case rnn

    /// True for the recurrent kinds, whose examples are `sequenceLength` steps of `inputDim` features.
    public var isSequence: Bool { self == .factorizedRNN || self == .rnn }

    /// True for the kinds whose weights are signed by design (no `nonnegative` constraint possible).
    public var hasSignedWeights: Bool { self == .mlp || self == .rnn }

    /// Whether a model of this kind keeps W ≥ 1e-5 unless told otherwise (the PFC block kinds).
    public var nonnegativeByDefault: Bool { self == .pfc || self == .pfc2 }
}

/// Everything needed to rebuild a network's shape; stored as JSON in model files and the database.
public struct Architecture: Sendable, Codable, Equatable {
    /// Model family.
    public var kind: ModelKind
    /// Features per example (d_x).
    public var inputDim: Int
    /// Classes (d_y).
    public var outputDim: Int
    /// Basis size K of every block (the hidden width for the MLP).
    public var basis: Int
    /// Unrolled FISTA iterations N (ignored by the MLP).
    public var iterations: Int
    /// Training objective.
    public var loss: LossKind
    /// λ of `images_labels_mse` (weight of the label term).
    public var labelLossWeight: Float
    /// Keep W ≥ 1e-5 by clipping after every step (PFC kinds only).
    public var nonnegative: Bool
    /// Steps T per example (recurrent kinds; 1 otherwise).
    public var sequenceLength: Int = 1
    /// Backpropagate through time (recurrent kinds); false detaches h_{t−1} every step.
    public var bptt: Bool = true

    /// Numbers per example: T·d for the recurrent kinds, `inputDim` otherwise.
    public var featureCount: Int { kind.isSequence ? inputDim * sequenceLength : inputDim }

    /// An architecture with the paper's defaults for what is not given.
    public init(kind: ModelKind, inputDim: Int, outputDim: Int, basis: Int = 300, iterations: Int = 100,
                loss: LossKind = .labelsMSE, labelLossWeight: Float = 0.5, nonnegative: Bool = true) {
        self.kind = kind
        self.inputDim = inputDim
        self.outputDim = outputDim
        self.basis = basis
        self.iterations = iterations
        self.loss = loss
        self.labelLossWeight = labelLossWeight
        self.nonnegative = kind.hasSignedWeights ? false : nonnegative
    }

    enum CodingKeys: String, CodingKey {
        case kind, loss, nonnegative, basis, iterations, bptt
        case inputDim = "input_dim", outputDim = "output_dim", labelLossWeight = "label_loss_weight", sequenceLength = "sequence_length"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        kind = try c.decode(ModelKind.self, forKey: .kind)
        inputDim = try c.decode(Int.self, forKey: .inputDim)
        outputDim = try c.decode(Int.self, forKey: .outputDim)
        basis = try c.decode(Int.self, forKey: .basis)
        iterations = try c.decode(Int.self, forKey: .iterations)
        loss = try c.decode(LossKind.self, forKey: .loss)
        labelLossWeight = try c.decode(Float.self, forKey: .labelLossWeight)
        nonnegative = try c.decode(Bool.self, forKey: .nonnegative)
        sequenceLength = try c.decodeIfPresent(Int.self, forKey: .sequenceLength) ?? 1
        bptt = try c.decodeIfPresent(Bool.self, forKey: .bptt) ?? true
    }

    /// Weights in all matrices of a network of this architecture (overflow-checked; nil when it
    /// does not fit in `Int`).
    public var parameterCount: Int? {
        func mul(_ a: Int?, _ b: Int?) -> Int? { a.flatMap { a in b.flatMap { CheckedSize.product(a, $0) } } }
        func add(_ terms: Int?...) -> Int? { CheckedSize.sum(terms) }
        let d = inputDim, c = outputDim, k = basis
        switch kind {
        case .pfc: return mul(add(d, c), k)
        case .pfc2: return mul(add(d, d, d, c), k)                  // W_x1, W_y1 (d×K), W_x2 (d×K), W_y2 (C×K)
        case .mlp: return add(mul(add(d, c), k), k, c)               // w1, b1, w2, b2
        case .factorizedRNN: return mul(add(d, k, c), k)             // W_x, W_h, W_y
        case .rnn: return add(mul(add(d, k, c), k), k, c)            // W_xh, W_hh, b_h, W_hy, b_y
        }
    }

    /// Multiply-adds of one forward pass over `rows` examples (FISTA: ηXᵀW once and Z·A per
    /// iteration, plus the Gram matrix once per call; research/pfc.md §1.2), nil on overflow.
    public func inferenceWork(rows: Int) -> Int? {
        let d = inputDim, c = outputDim, k = basis, n = max(1, iterations), t = max(1, sequenceLength)
        let fistaPerRow = CheckedSize.sum(CheckedSize.product(d, k), CheckedSize.product(n, k, k))
        let perRow: Int?
        switch kind {
        case .pfc: perRow = CheckedSize.sum(fistaPerRow, CheckedSize.product(c, k))
        case .pfc2: perRow = CheckedSize.sum(CheckedSize.product(2, fistaPerRow ?? -1), CheckedSize.product(c, k))
        case .mlp: perRow = CheckedSize.product(CheckedSize.sum(d, c) ?? -1, k)
        case .factorizedRNN:
            let step = CheckedSize.sum(CheckedSize.product(CheckedSize.sum(d, k) ?? -1, k), CheckedSize.product(n, k, k), CheckedSize.product(c, k))
            perRow = CheckedSize.product(t, step ?? -1)
        case .rnn:
            perRow = CheckedSize.product(t, CheckedSize.sum(CheckedSize.product(CheckedSize.sum(d, k, c) ?? -1, k)) ?? -1)
        }
        let gram = kind == .mlp || kind == .rnn ? 0 : CheckedSize.product(CheckedSize.sum(d, k) ?? -1, k, k)
        return CheckedSize.sum(CheckedSize.product(rows, perRow ?? -1), gram)
    }

    /// Bytes one training step over `batch` examples holds at its peak, an upper estimate, nil on
    /// overflow. Per FISTA block: the tape of all N iterations (Z_t and U_t, B×K each: the backward
    /// pass runs through every one of them, research/pfc.md §1.2) plus B×K work buffers (the active
    /// lists, the adjoints) and the batch itself; T times over for the factorized RNN (one warm-started
    /// FISTA per step, §2.2). Plus the per-thread gradient partials, the gradient, the optimizer's
    /// statistics and the Gram matrix. The training limit `max_working_memory` is checked on it.
    public func trainingMemory(batch: Int) -> Int? {
        let d = inputDim, c = outputDim, k = basis, n = max(1, iterations), t = max(1, sequenceLength)
        func mul(_ a: Int?, _ b: Int?) -> Int? { a.flatMap { a in b.flatMap { CheckedSize.product(a, $0) } } }
        // Tape (2N) and work buffers (16) per example and basis column of one FISTA block.
        let fistaPerRow = mul(CheckedSize.sum(mul(2, n), 16), k)
        let perRow: Int?
        switch kind {
        case .pfc: perRow = CheckedSize.sum(fistaPerRow, d, c)
        case .pfc2: perRow = CheckedSize.sum(mul(2, fistaPerRow), mul(2, d), c)
        case .mlp: perRow = CheckedSize.sum(mul(4, k), d, c)
        case .factorizedRNN: perRow = CheckedSize.sum(mul(t, CheckedSize.sum(fistaPerRow, d, k)), c)
        case .rnn: perRow = CheckedSize.sum(mul(t, CheckedSize.sum(mul(4, k), d)), c)
        }
        let blocks = kind == .pfc2 ? 2 : 1
        let gram = kind == .mlp || kind == .rnn ? 0 : mul(blocks, mul(k, k))
        let fixed = CheckedSize.sum(mul(6, parameterCount), gram)
        return mul(4, CheckedSize.sum(mul(max(0, batch), perRow), fixed))
    }

    /// Checks the dimensions are usable; returns a message naming the problem, or nil.
    public func validationProblem() -> String? {
        if inputDim < 1 { return "input_dim must be at least 1" }
        if outputDim < 2 { return "output_dim must be at least 2 classes" }
        if basis < 1 { return "basis must be at least 1" }
        if kind != .mlp && iterations < 1 { return "iterations must be at least 1" }
        if !(0...1).contains(labelLossWeight) { return "label_loss_weight must be in [0, 1]" }
        if kind == .mlp && loss == .imagesLabelsMSE { return "the MLP has no reconstruction; use labels_mse or cross_entropy" }
        if kind.isSequence {
            if sequenceLength < 1 { return "sequence_length must be at least 1" }
            if loss != .labelsMSE { return "recurrent models train on their own MSE objective; use loss labels_mse" }
        }
        return nil
    }
}

/// A trainable parameter matrix with its constraint.
public struct Parameter: Sendable, Equatable {
    /// Name, unique within a network (`wx`, `wy`, `w1`, …).
    public var name: String
    /// Current value.
    public var value: Matrix
    /// Clipped to ≥ 1e-5 after every optimizer step (research/pfc.md §1.3).
    public var nonnegative: Bool

    /// A parameter.
    public init(name: String, value: Matrix, nonnegative: Bool) {
        self.name = name
        self.value = value
        self.nonnegative = nonnegative
    }
}

/// Loss, outputs and gradients of one mini-batch; `gradients` align with `Network.parameters`.
public struct LossAndGradients: Sendable {
    /// Scalar training loss.
    public var loss: Float
    /// Network outputs ŷ, C×B.
    public var outputs: Matrix
    /// ∂loss/∂parameter, in the order of `parameters`.
    public var gradients: [Matrix]
    /// (correct, total) predictions over the batch's targets when they are not one per column of
    /// `outputs` (sequences labelled per step); nil: argmax of `outputs` against the labels.
    public var targetCounts: (correct: Int, total: Int)?

    /// Loss, outputs and gradients of a batch.
    public init(loss: Float, outputs: Matrix, gradients: [Matrix], targetCounts: (correct: Int, total: Int)? = nil) {
        self.loss = loss
        self.outputs = outputs
        self.gradients = gradients
        self.targetCounts = targetCounts
    }
}

/// A classifier the trainer can fit: batches are d×B matrices, one column per example.
public protocol Network: Sendable {
    /// The shape and objective of the network.
    var architecture: Architecture { get }
    /// All trainable matrices, in a fixed order.
    var parameters: [Parameter] { get set }
    /// Outputs ŷ (C×B) for the batch `x` (d×B).
    func predict(_ x: Matrix) -> Matrix
    /// The training loss and its gradients for the batch `x` (d×B) with integer `labels`: B of them,
    /// or B·T (example after example, −1 for no target) for a recurrent model labelled per step.
    func lossAndGradients(x: Matrix, labels: [Int]) -> LossAndGradients
    /// `lossAndGradients` for an optimizer that reads only `columns` of every parameter (the sliding
    /// window, research/pfc.md §3): gradients outside them may be left zero to save work. The
    /// default computes them all.
    func lossAndGradients(x: Matrix, labels: [Int], gradientColumns columns: Range<Int>?) -> LossAndGradients
    /// Mean loss (without gradients) and accuracy over the targets of a batch labelled as for
    /// `lossAndGradients`.
    func evaluate(x: Matrix, labels: [Int]) -> (loss: Float, accuracy: Float)
    /// The PFC blocks, input side first, whose basis vectors (the columns of W_x, W_y) the service
    /// lists, draws and explains with; empty for kinds without blocks (MLP, RNNs).
    var pfcBlocks: [PFCBlock] { get }
    /// Every block's activation for the batch `x` (d×B), in `pfcBlocks` order; the last block's `y`
    /// is the network's output. Empty for kinds without blocks.
    func blockActivations(_ x: Matrix) -> [PFCBlock.Activation]
}

extension Network {
    public func lossAndGradients(x: Matrix, labels: [Int], gradientColumns columns: Range<Int>?) -> LossAndGradients {
        lossAndGradients(x: x, labels: labels)
    }

    /// Computes the inference constants a forward pass would otherwise form on its first call and
    /// keeps them with the network (shared by its copies): A = W_xᵀW_x and η = 1/λmax(A) of every
    /// PFC block, A and η of the factorized RNN's stacked W_z. Everything else a forward pass
    /// computes depends on the batch (per-example scales) or is negligible (the N momentum
    /// coefficients, 1ᵀA); the MLP and the vanilla RNN have no constants beyond their weights.
    public func prepareInference() {
        for block in pfcBlocks { block.prepareInference() }
        if let s = self as? SequenceClassifier, let f = s.model as? FactorizedRNN { f.prepareInference() }
    }

    /// No PFC blocks (the default for the kinds without them).
    public var pfcBlocks: [PFCBlock] { [] }
    /// No block activations (the default for the kinds without PFC blocks).
    public func blockActivations(_ x: Matrix) -> [PFCBlock.Activation] { [] }

    /// Mean loss (without gradients) and accuracy of the network on a batch with one label per column.
    public func evaluate(x: Matrix, labels: [Int]) -> (loss: Float, accuracy: Float) {
        let out = predict(x)
        let loss = Losses.outputLoss(architecture.loss == .crossEntropy ? .crossEntropy : .labelsMSE,
                                     outputs: out, labels: labels, labelWeight: 1).loss
        return (loss, Losses.accuracy(out, labels: labels))
    }
}

/// Builds networks from an architecture.
public enum NetworkFactory {
    /// A freshly initialised network, deterministic for `seed`.
    public static func make(_ arch: Architecture, seed: UInt64) -> any Network {
        var rng = SeededRandom(seed: seed)
        switch arch.kind {
        case .pfc: return PFCClassifier(architecture: arch, rng: &rng)
        case .pfc2: return ResidualPFCNetwork(architecture: arch, rng: &rng)
        case .mlp: return MLPClassifier(architecture: arch, rng: &rng)
        case .factorizedRNN, .rnn: return SequenceClassifier(architecture: arch, seed: seed)
        }
    }

    /// A network with the given parameter values; throws when names or shapes do not match.
    public static func make(_ arch: Architecture, parameters: [Parameter]) throws -> any Network {
        // Check the architecture against the weights actually present before allocating anything it
        // names: a file (or an import) claiming K = 10⁹ must not make the process allocate it.
        if let problem = arch.validationProblem() { throw ModelFileError.incompatible(problem) }
        let present = parameters.reduce(0) { $0 + $1.value.count }
        guard let needed = arch.parameterCount, needed == present else {
            throw ModelFileError.incompatible("the architecture needs \(arch.parameterCount.map { "\($0)" } ?? "too many") weights; the file holds \(present)")
        }
        var net = make(arch, seed: 0)
        let expected = net.parameters
        guard expected.count == parameters.count else {
            throw ModelFileError.incompatible("expected \(expected.count) parameter matrices, found \(parameters.count)")
        }
        for (e, p) in zip(expected, parameters) {
            guard e.name == p.name, e.value.rows == p.value.rows, e.value.cols == p.value.cols else {
                throw ModelFileError.incompatible(
                    "parameter \(p.name) is \(p.value.rows)×\(p.value.cols); \(e.name) must be \(e.value.rows)×\(e.value.cols)")
            }
        }
        net.parameters = parameters
        return net
    }
}
