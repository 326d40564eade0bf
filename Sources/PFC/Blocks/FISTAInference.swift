// FISTAInference: the PFC block's unrolled non-negative inference and its hand-written backward.
import Linalg

/// Settings of the unrolled inference (research/pfc.md §1.2).
public struct FISTASettings: Sendable, Equatable, Codable {
    /// Unrolled iterations N (100 for the classifiers).
    public var iterations: Int
    /// Lower bound of h and its initial value (`min_val` = 1e-5).
    public var floor: Float = 1e-5
    /// Cap each example's max(h) at max(x) by a stop-gradient scale (`enable_h_column_normalization`).
    public var normalizeColumns: Bool = true

    /// Test hook: replaces the stop-gradient step η and scales s (N×B) by recorded values, so the
    /// analytic gradient can be checked by finite differences of the same function.
    var frozen: (step: Float, scales: [Float])? = nil

    enum CodingKeys: String, CodingKey { case iterations, floor, normalizeColumns = "normalize_columns" }

    public static func == (a: FISTASettings, b: FISTASettings) -> Bool {
        a.iterations == b.iterations && a.floor == b.floor && a.normalizeColumns == b.normalizeColumns
    }

    /// Settings with `iterations` unrolled steps and the paper's other defaults.
    public init(iterations: Int = 100, floor: Float = 1e-5, normalizeColumns: Bool = true) {
        self.iterations = iterations
        self.floor = floor
        self.normalizeColumns = normalizeColumns
    }
}

/// What the forward pass keeps for the backward pass: every iteration's momentum point Z_t and
/// pre-clamp value U_t (each B×K, one row per example), the stop-gradient scales s_t, the Gram
/// matrix A = W_xᵀW_x and the step η.
public struct FISTATape: Sendable {
    let batch: Int, basis: Int, iterations: Int
    var z: [Float]      // N × (B×K): Z_t, the point iteration t starts from (Z_0 = floor)
    var u: [Float]      // N × (B×K): U_t = Z_t − η(Z_t A − XᵀW); overwritten by Ū_t in backward
    var scales: [Float] // N × B
    var momentum: [Float] // N: β_t
    var gram: [Float]   // K×K
    /// The step η = 1/λmax(W_xᵀW_x) that was used.
    public let step: Float
}

/// Unrolled projected-gradient NMF with FISTA momentum: infers h ≥ floor with x ≈ W_x h.
///
/// Implements research/pfc.md §1.2 on the transposed code Hᵀ (B×K), as the official code does:
/// ```
/// Uᵀ_t = Zᵀ_t − η (Zᵀ_t A − XᵀW)        A = WᵀW (K×K, formed once per batch: K×K product per step)
/// C_t  = max(U_t, floor)
/// s_b  = max_i X[i,b] / max_k C[b,k] if that max exceeds max_i X[i,b], else 1   (stop-gradient)
/// H_t  = diag(s) C_t
/// Z_{t+1} = H_t + β_t (H_t − H_{t−1}),  β_t = (m−1)/m',  m' = (1 + √(1+4m²))/2,  m₀ = 1,  H_{−1} = Z_0 = floor
/// ```
/// η = 1/λmax(A) is a stop-gradient constant (power iteration). The backward pass differentiates
/// all N iterations exactly as autograd would through this graph.
public enum FISTAInference {
    /// Runs the inference. `wx`: d×K, `x`: d×B (one column per example). Returns Hᵀ (B×K) and,
    /// when `keepTape`, what `backward` needs.
    public static func forward(wx: Matrix, x: Matrix, settings: FISTASettings, keepTape: Bool) -> (hT: Matrix, tape: FISTATape?) {
        let frozenStep = settings.frozen?.step, frozenScales = settings.frozen?.scales
        precondition(wx.rows == x.rows, "W_x has \(wx.rows) rows but x has \(x.rows) features")
        let b = x.cols, k = wx.cols, n = max(1, settings.iterations)
        let kb = k * b
        let floor = settings.floor

        // A = WᵀW (K×K) and XᵀW (B×K).
        let gram = Matrix.product(wx, wx, transA: .transposed)
        let eta: Float = frozenStep ?? {
            let l = gram.storage.withUnsafeBufferPointer { PowerIteration.largestEigenvalue(of: $0.baseAddress!, k: k) }
            return l > 0 ? 1 / l : 1
        }()
        var etaXtW = Matrix.product(x, wx, transA: .transposed)
        etaXtW.scale(by: eta)
        let xMax = x.columnMaxima()

        let slots = keepTape ? n : 1
        var zs = [Float](repeating: 0, count: (keepTape ? n : 2) * kb)
        var us = [Float](repeating: 0, count: slots * kb)
        var scales = [Float](repeating: 1, count: n * b)
        var momentum = [Float](repeating: 0, count: n)
        var hPrev = [Float](repeating: floor, count: kb)
        var hCur = [Float](repeating: 0, count: kb)
        for i in 0..<kb { zs[i] = floor }

        var m: Float = 1
        for t in 0..<n {
            let mNext = (1 + (1 + 4 * m * m).squareRoot()) / 2
            let beta = (m - 1) / mNext
            m = mNext
            momentum[t] = beta
            let zSlot = keepTape ? t : t % 2
            let zNextSlot = keepTape ? t + 1 : (t + 1) % 2
            let uSlot = keepTape ? t : 0
            zs.withUnsafeMutableBufferPointer { zAll in
                us.withUnsafeMutableBufferPointer { uAll in
                    let z = zAll.baseAddress! + zSlot * kb
                    let u = uAll.baseAddress! + uSlot * kb
                    // U = Z + ηXᵀW − η Z A
                    etaXtW.storage.withUnsafeBufferPointer { e in
                        for i in 0..<kb { u[i] = z[i] + e[i] }
                    }
                    gram.storage.withUnsafeBufferPointer { a in
                        BLAS.gemm(.none, .none, m: b, n: k, k: k, alpha: -eta, a: z, lda: k,
                                  b: a.baseAddress!, ldb: k, beta: 1, c: u, ldc: k)
                    }
                    let writeNext = t + 1 < n // Z_N is never consumed
                    hCur.withUnsafeMutableBufferPointer { hc in
                        hPrev.withUnsafeMutableBufferPointer { hp in
                            for r in 0..<b {
                                let row = r * k
                                var rowMax: Float = -.infinity
                                for j in 0..<k {
                                    let c = Swift.max(u[row + j], floor)
                                    hc[row + j] = c
                                    rowMax = Swift.max(rowMax, c)
                                }
                                var s: Float = 1
                                if let frozen = frozenScales {
                                    s = frozen[t * b + r]
                                } else if settings.normalizeColumns && rowMax > xMax[r] {
                                    s = xMax[r] / rowMax
                                }
                                scales[t * b + r] = s
                                if writeNext {
                                    let zn = zAll.baseAddress! + zNextSlot * kb + row
                                    for j in 0..<k {
                                        let h = hc[row + j] * s
                                        hc[row + j] = h
                                        zn[j] = h + beta * (h - hp[row + j])
                                    }
                                } else if s != 1 {
                                    for j in 0..<k { hc[row + j] *= s }
                                }
                            }
                        }
                    }
                }
            }
            swap(&hPrev, &hCur)
        }
        let hT = Matrix(rows: b, cols: k, storage: hPrev)
        guard keepTape else { return (hT, nil) }
        return (hT, FISTATape(batch: b, basis: k, iterations: n, z: zs, u: us, scales: scales,
                              momentum: momentum, gram: gram.storage, step: eta))
    }

    /// Backward pass through all N iterations.
    ///
    /// Consumes the tape (its U buffer is overwritten). Given ∂L/∂Hᵀ (B×K) for the output, returns ∂L/∂W_x (d×K) and ∂L/∂x (d×B). With
    /// Ū_t = H̄_t ⊙ s_t ⊙ [U_t ≥ floor], H̄_t = [t = N−1]·ḡ + (1+β_t) Z̄_{t+1} − β_{t+1} Z̄_{t+2} and
    /// Z̄_t = Ū_t − η Ū_t A:  Ā = −η Σ_t Ū_tᵀ Z_t, B̄ = η Σ_t Ū_t (the adjoint of XᵀW), so
    /// W̄ = W(Ā + Āᵀ) + X B̄ and X̄ = W B̄ᵀ.
    public static func backward(
        tape: inout FISTATape, wx: Matrix, x: Matrix, gradHT: Matrix, settings: FISTASettings
    ) -> (gradWx: Matrix, gradX: Matrix) {
        let b = tape.batch, k = tape.basis, n = tape.iterations, kb = b * k
        let eta = tape.step, floor = settings.floor
        precondition(gradHT.rows == b && gradHT.cols == k, "gradient shape mismatch")
        var zbar1 = [Float](repeating: 0, count: kb) // Z̄_{t+1}
        var zbar2 = [Float](repeating: 0, count: kb) // Z̄_{t+2}
        var barB = Matrix(rows: b, cols: k)           // Σ Ū_t, scaled by η at the end
        let scales = tape.scales, beta = tape.momentum
        let gram = tape.gram

        for t in stride(from: n - 1, through: 0, by: -1) {
            let c1 = t + 1 < n ? 1 + beta[t] : 0
            let c2 = t + 2 < n ? -beta[t + 1] : 0
            let isLast = t == n - 1
            tape.u.withUnsafeMutableBufferPointer { uAll in
                let ub = uAll.baseAddress! + t * kb
                zbar1.withUnsafeBufferPointer { z1 in
                    zbar2.withUnsafeMutableBufferPointer { z2 in
                        gradHT.storage.withUnsafeBufferPointer { g in
                            barB.storage.withUnsafeMutableBufferPointer { bb in
                                for r in 0..<b {
                                    let s = scales[t * b + r], row = r * k
                                    for j in 0..<k {
                                        let i = row + j
                                        var hbar = c1 * z1[i] + c2 * z2[i]
                                        if isLast { hbar += g[i] }
                                        let ubar = ub[i] >= floor ? hbar * s : 0
                                        ub[i] = ubar
                                        bb[i] += ubar
                                        z2[i] = ubar // becomes Z̄_t after the product below
                                    }
                                }
                            }
                        }
                        if t >= 1 {
                            gram.withUnsafeBufferPointer { a in
                                BLAS.gemm(.none, .none, m: b, n: k, k: k, alpha: -eta, a: ub, lda: k,
                                          b: a.baseAddress!, ldb: k, beta: 1, c: z2.baseAddress!, ldc: k)
                            }
                        }
                    }
                }
            }
            swap(&zbar1, &zbar2) // zbar1 = Z̄_t, zbar2 = Z̄_{t+1}
        }

        // Ā = −η Σ_t Ū_tᵀ Z_t: one product over the stacked (N·B)×K tapes.
        var barA = Matrix(rows: k, cols: k)
        tape.u.withUnsafeBufferPointer { ub in
            tape.z.withUnsafeBufferPointer { zb in
                barA.storage.withUnsafeMutableBufferPointer { pa in
                    BLAS.gemm(.transposed, .none, m: k, n: k, k: n * b, alpha: -eta, a: ub.baseAddress!, lda: k,
                              b: zb.baseAddress!, ldb: k, beta: 0, c: pa.baseAddress!, ldc: k)
                }
            }
        }
        barB.scale(by: eta)
        // Symmetrize: S = Ā + Āᵀ.
        for i in 0..<k { for j in i..<k {
            let s = barA[i, j] + barA[j, i]
            barA[i, j] = s; barA[j, i] = s
        } }
        var gradW = Matrix.product(wx, barA)                  // W S: d×K
        gradW.accumulateProduct(x, barB)                      // + X B̄: (d×B)(B×K)
        let gradX = Matrix.product(wx, barB, transB: .transposed) // W B̄ᵀ: d×B
        return (gradW, gradX)
    }
}
