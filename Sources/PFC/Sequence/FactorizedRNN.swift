// FactorizedRNN: the factorized RNN trained by backprop (research/pfc.md §2.2):
// [y_t; h_{t−1}; x_t] ≈ [W_y; W_h; W_x] h_t, h_t inferred by unrolled FISTA warm-started from h_{t−1}.
import Linalg

/// The factorized RNN trained with backprop (research/pfc.md §2.2, official `FactorizedRNN`).
///
/// Every step stacks `z_t = [h_{t−1}; x_t]` and `W_z = [W_h; W_x]` and infers h_t ≥ floor from
/// `z_t ≈ W_z h_t` by N unrolled FISTA iterations started from h_{t−1} (h_{−1} = 0), with the
/// normalisation scaling on (max(h_t) ≤ max(z_t) per example, stop-gradient). The output is
/// `y_t = W_y h_t`. The hidden size equals the basis size K, so W_h is K×K.
///
/// The loss is `mse_factorized`: the label term of `SequenceLosses.labelMSE` plus
/// `(1/T) Σ_t [MSE(W_h h_t, h_{t−1}.detach()) + MSE(W_x h_t, x_t)]`. With `bptt` the gradient flows
/// from h_t back into h_{t−1} (through both z_t and the warm start); without it h_{t−1} is detached,
/// so each step's gradient stays inside its own unrolled inference.
public struct FactorizedRNN: GradientSequenceModel {
    /// Output factor W_y, C×K.
    public var wy: Matrix
    /// Recurrent factor W_h, K×K.
    public var wh: Matrix
    /// Input factor W_x, d×K.
    public var wx: Matrix
    /// Inference settings (N unrolled iterations; the normalisation scaling is always on).
    public var settings: FISTASettings
    /// Keep W ≥ 1e-5 (clipped by the optimizer after every step).
    public let nonnegative: Bool
    /// Backprop through time; false detaches h_{t−1} at every step.
    public var bptt: Bool
    /// Test hook: per-step stop-gradient step and scales to reuse instead of recomputing.
    var frozen: [FISTAStopGradients]? = nil
    /// Test hook: recorded Hᵀ_{t−1} per step, the values of every `detach()` (the reconstruction
    /// target always, the recurrent input too without BPTT), so finite differences differentiate
    /// the same function the backward pass does.
    var detached: [Matrix]? = nil
    /// A = W_zᵀW_z and η for the current W_z = [W_h; W_x], reused while the weights are unchanged
    /// (every prediction of a served version; a training step's new weights replace it).
    let gramCache = GramCache()

    /// A freshly initialised network: W ~ (U − 0.5)·scale when signed, U·scale when non-negative
    /// (research/pfc.md §2.2; the official `weights_noise_scale` is 0.01).
    public init(inputDim: Int, hidden: Int, outputDim: Int, iterations: Int = 10, nonnegative: Bool = false,
                bptt: Bool = true, initScale: Float = 0.01, seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        let (lo, hi): (Float, Float) = nonnegative ? (0, initScale) : (-0.5 * initScale, 0.5 * initScale)
        var ws = [(outputDim, hidden), (hidden, hidden), (inputDim, hidden)].map {
            rng.uniformMatrix(rows: $0.0, cols: $0.1, low: lo, high: hi)
        }
        if nonnegative { for i in ws.indices { ws[i].clampMin(nonnegativeFloor) } }
        (wy, wh, wx) = (ws[0], ws[1], ws[2])
        settings = FISTASettings(iterations: iterations, normalizeColumns: true)
        self.nonnegative = nonnegative
        self.bptt = bptt
    }

    /// Basis (= hidden) size K.
    public var hidden: Int { wh.cols }

    public var parameters: [Parameter] {
        get {
            [Parameter(name: "wy", value: wy, nonnegative: nonnegative), Parameter(name: "wh", value: wh, nonnegative: nonnegative),
             Parameter(name: "wx", value: wx, nonnegative: nonnegative)]
        }
        set { wy = newValue[0].value; wh = newValue[1].value; wx = newValue[2].value }
    }

    /// W_z = [W_h; W_x], (K+d)×K.
    var stackedInputFactor: Matrix { Matrix(rows: wh.rows + wx.rows, cols: hidden, storage: wh.storage + wx.storage) }

    /// z_t = [h_{t−1}; x_t] as a (K+d)×B matrix from Hᵀ_{t−1} (B×K) and x_t (d×B).
    static func stack(_ hPrevT: Matrix, _ x: Matrix) -> Matrix {
        Matrix(rows: hPrevT.cols + x.rows, cols: x.cols, storage: hPrevT.transposed().storage + x.storage)
    }

    /// Everything one pass over a sequence produced.
    public struct Trace: Sendable {
        /// Hᵀ_t (B×K) for every step.
        public var codes: [Matrix]
        /// y_t = W_y h_t (C×B) for every step.
        public var outputs: [Matrix]
        var inputs: [Matrix] = []
        var tapes: [WarmStartTape] = []
        /// The stop-gradient values every step used.
        var stopGradients: [FISTAStopGradients] { tapes.map { FISTAStopGradients(step: $0.step, scales: $0.scales) } }
    }

    /// Runs the recurrence over `steps` (each d×B). `keepTape` keeps what `backward` needs.
    public func run(_ steps: [Matrix], keepTape: Bool) -> Trace {
        let wz = stackedInputFactor
        let b = steps.first?.cols ?? 0
        var hPrev = Matrix(rows: b, cols: hidden) // h_{−1} = 0
        var trace = Trace(codes: [], outputs: [])
        let prepared = gramCache.prepared(for: wz) // W_z is the same at every step (and every call)
        for (t, x) in steps.enumerated() {
            if !bptt, let fixed = detached { hPrev = fixed[t] }
            let z = Self.stack(hPrev, x)
            let (hT, tape) = WarmStartFISTA.forward(w: wz, x: z, start: hPrev, settings: settings, frozen: frozen?[t], keepTape: keepTape,
                                                     prepared: prepared)
            trace.codes.append(hT)
            trace.outputs.append(Matrix.product(wy, hT, transB: .transposed))
            if keepTape { trace.inputs.append(z); trace.tapes.append(tape!) }
            hPrev = hT
        }
        return trace
    }

    public func predict(_ steps: [Matrix]) -> [Matrix] { run(steps, keepTape: false).outputs }

    /// Computes (and caches) A = W_zᵀW_z and η before the first prediction needs them.
    func prepareInference() { _ = gramCache.prepared(for: stackedInputFactor) }

    public func lossAndGradients(_ batch: SequenceBatch) -> SequenceGradients {
        var trace = run(batch.steps, keepTape: true)
        let T = batch.length, b = batch.size, k = hidden
        var (loss, gradOutputs) = SequenceLosses.labelMSE(outputs: trace.outputs, targets: batch.targets)
        var gWy = Matrix(rows: wy.rows, cols: k), gWh = Matrix(rows: k, cols: k), gWx = Matrix(rows: wx.rows, cols: k)
        var carry = Matrix(rows: b, cols: k) // ∂L/∂Hᵀ_t arriving from step t+1 (BPTT only)
        let wz = stackedInputFactor
        for t in stride(from: T - 1, through: 0, by: -1) {
            let hT = trace.codes[t]
            let hPrevT = detached?[t] ?? (t > 0 ? trace.codes[t - 1] : Matrix(rows: b, cols: k))
            var gradHT = carry
            if let gy = gradOutputs[t] {
                gWy.accumulateProduct(gy, hT)                             // (C×B)(B×K)
                gradHT.accumulateProduct(gy, wy, transA: .transposed)     // (B×C)(C×K)
            }
            // Reconstruction terms (1/T)·MSE(W_h h_t, h_{t−1}.detach()) and (1/T)·MSE(W_x h_t, x_t).
            let recH = Matrix.product(wh, hT, transB: .transposed)
            let recX = Matrix.product(wx, hT, transB: .transposed)
            let lh = Losses.mse(recH, hPrevT.transposed(), weight: 1 / Float(T))
            let lx = Losses.mse(recX, batch.steps[t], weight: 1 / Float(T))
            loss += lh.loss + lx.loss
            gWh.accumulateProduct(lh.grad, hT)
            gWx.accumulateProduct(lx.grad, hT)
            gradHT.accumulateProduct(lh.grad, wh, transA: .transposed)
            gradHT.accumulateProduct(lx.grad, wx, transA: .transposed)
            gradOutputs[t] = nil

            // Destructured once: reading `storage` through the returned tuple inside the loops below
            // copied the whole tuple (three retains and releases) per element, a fifth of a step.
            let (gradWz, gradZ, gradStart) = WarmStartFISTA.backward(tape: &trace.tapes[t], w: wz, x: trace.inputs[t], gradHT: gradHT,
                                                                     settings: settings)
            // ∂L/∂W_z splits into its W_h rows (first K) and W_x rows.
            gradWz.storage.withUnsafeBufferPointer { g in
                gWh.storage.withUnsafeMutableBufferPointer { h in for i in 0..<(k * k) { h[i] += g[i] } }
                gWx.storage.withUnsafeMutableBufferPointer { x in for i in x.indices { x[i] += g[k * k + i] } }
            }
            if bptt && t > 0 {
                // h_{t−1} enters step t as the top K rows of z_t (∂L/∂z_t is (K+d)×B) and as the warm start.
                carry = gradStart
                gradZ.storage.withUnsafeBufferPointer { gz in
                    carry.storage.withUnsafeMutableBufferPointer { c in
                        for j in 0..<k { for r in 0..<b { c[r * k + j] += gz[j * b + r] } }
                    }
                }
            } else {
                carry = Matrix(rows: b, cols: k)
            }
        }
        return SequenceGradients(loss: loss, outputs: trace.outputs, gradients: [gWy, gWh, gWx])
    }
}
