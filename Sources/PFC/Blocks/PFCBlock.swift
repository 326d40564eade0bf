// PFCBlock: the Predictive Factorized Coupling block [y; x] ≈ [W_y; W_x] h (research/pfc.md §1.1).
import Linalg
import Synchronization

/// One PFC block: W_x (d_x×K) and W_y (d_y×K) share the basis index k and one non-negative code h.
/// Inference solves x ≈ W_x h for h ≥ floor by unrolled FISTA; the prediction is y = W_y h.
public struct PFCBlock: Sendable {
    /// Input factor, d_x × K.
    public var wx: Matrix
    /// Output factor, d_y × K.
    public var wy: Matrix
    /// Inference settings (unrolled iterations, floor, column normalisation).
    public var settings: FISTASettings
    /// A = W_xᵀW_x and η for the current W_x, reused while W_x is unchanged (prediction).
    let gramCache = GramCache()

    /// A block over given factors.
    public init(wx: Matrix, wy: Matrix, settings: FISTASettings) {
        precondition(wx.cols == wy.cols, "W_x and W_y must share the basis dimension")
        self.wx = wx
        self.wy = wy
        self.settings = settings
    }

    /// A block initialised as the official code does: W_x, W_y ~ U(0,1)·0.01 (research/pfc.md §1.3).
    public init(inputDim: Int, outputDim: Int, basis: Int, settings: FISTASettings, rng: inout SeededRandom) {
        self.init(wx: rng.uniformMatrix(rows: inputDim, cols: basis, low: 0, high: 0.01),
                  wy: rng.uniformMatrix(rows: outputDim, cols: basis, low: 0, high: 0.01),
                  settings: settings)
    }

    /// Basis size K.
    public var basis: Int { wx.cols }

    /// Computes (and caches) A = W_xᵀW_x and η for the current W_x before a forward pass needs them.
    public func prepareInference() { _ = gramCache.prepared(for: wx) }

    /// Everything one forward pass of the block produced.
    public struct Activation: Sendable {
        /// The code Hᵀ, B×K (one row per example).
        public var hT: Matrix
        /// The prediction W_y h, d_y×B.
        public var y: Matrix
        /// The reconstruction W_x h, d_x×B, when requested.
        public var reconstruction: Matrix?
        var tape: FISTATape?
        /// How sparse the inference was: the active fraction per iteration (issue 14).
        public var statistics: FISTAStatistics
        /// The stop-gradient step and scales this pass used (tests freeze them).
        var stopGradients: (step: Float, scales: [Float])? { tape.map { ($0.step, $0.scales) } }
    }

    /// Infers h for the batch `x` (d_x×B) and predicts y. `keepTape` keeps what `backward` needs.
    public func forward(_ x: Matrix, keepTape: Bool, reconstruct: Bool = false) -> Activation {
        let (hT, tape, stats) = FISTAInference.forwardWithStatistics(wx: wx, x: x, settings: settings, keepTape: keepTape,
                                                                      threads: ComputeThreads.count,
                                                                      prepared: gramCache.prepared(for: wx))
        let y = Matrix.product(wy, hT, transB: .transposed)
        let rec = reconstruct ? Matrix.product(wx, hT, transB: .transposed) : nil
        return Activation(hT: hT, y: y, reconstruction: rec, tape: tape, statistics: stats)
    }

    /// Gradients of the block given ∂L/∂y (d_y×B) and optionally ∂L/∂(W_x h) (d_x×B).
    /// Returns ∂L/∂W_x, ∂L/∂W_y and ∂L/∂x (so blocks can be chained). Consumes the activation's tape.
    /// With `columns` (a sliding window) ∂L/∂W_x is computed on those columns only and is zero on
    /// the others; ∂L/∂W_y and ∂L/∂x are complete either way.
    public func backward(_ act: inout Activation, x: Matrix, gradY: Matrix, gradReconstruction: Matrix? = nil,
                         columns: Range<Int>? = nil) -> (gradWx: Matrix, gradWy: Matrix, gradX: Matrix)
    {
        guard var tape = act.tape else { preconditionFailure("forward(keepTape: true) is required before backward") }
        act.tape = nil
        let gradWy = Matrix.product(gradY, act.hT)                    // (d_y×B)(B×K)
        var gradHT = Matrix.product(gradY, wy, transA: .transposed)   // (B×d_y)(d_y×K)
        if let gr = gradReconstruction { gradHT.accumulateProduct(gr, wx, transA: .transposed) }
        var (gradWx, gradX) = FISTAInference.backward(tape: &tape, wx: wx, x: x, gradHT: gradHT, settings: settings, columns: columns)
        if let gr = gradReconstruction {
            if let columns {
                // W̄_x[:, 𝒞] += ∂L/∂(W_x h) · Hᵀ[:, 𝒞]: (d_x×B)(B×|𝒞|)
                let cols = columns.clamped(to: 0..<basis), k = basis
                if !cols.isEmpty {
                    gr.storage.withUnsafeBufferPointer { gp in
                        act.hT.storage.withUnsafeBufferPointer { hp in
                            gradWx.storage.withUnsafeMutableBufferPointer { wp in
                                BLAS.gemm(.none, .none, m: gr.rows, n: cols.count, k: gr.cols, alpha: 1, a: gp.baseAddress!, lda: gr.cols,
                                          b: hp.baseAddress! + cols.lowerBound, ldb: k, beta: 1, c: wp.baseAddress! + cols.lowerBound, ldc: k)
                            }
                        }
                    }
                }
            } else {
                gradWx.accumulateProduct(gr, act.hT)
            }
        }
        return (gradWx, gradWy, gradX)
    }
}

/// The Gram matrix A = W_xᵀW_x, the step η = 1/λmax(A) and 1ᵀA of the last W_x a block's inference saw.
/// Both are pure functions of W_x (the power iteration starts from a fixed vector), so reusing them
/// for unchanged weights gives bit-identical results; predicting one example at a time otherwise
/// spends most of its time forming A (d·K² multiply-adds) and its eigenvalue. Shared by copies of
/// the block; a new W_x (every training step) just replaces the entry.
final class GramCache: Sendable {
    private struct Entry: @unchecked Sendable { var wx: Matrix; var constants: FISTAInference.Constants }
    private let entry = Mutex<Entry?>(nil)

    /// A and η for `wx`, computed on a miss.
    func prepared(for wx: Matrix) -> FISTAInference.Constants {
        if let hit = entry.withLock({ e -> FISTAInference.Constants? in
            guard let e, e.wx.rows == wx.rows, e.wx.cols == wx.cols, e.wx.storage == wx.storage else { return nil }
            return e.constants
        }) { return hit }
        let p = FISTAInference.gramAndStep(wx)
        entry.withLock { $0 = Entry(wx: wx, constants: p) }
        return p
    }
}
