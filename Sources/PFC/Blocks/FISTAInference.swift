// FISTAInference: the PFC block's unrolled non-negative inference and its hand-written backward.
import Linalg
import Synchronization

/// Settings of the unrolled inference (research/pfc.md §1.2).
public struct FISTASettings: Sendable, Equatable, Codable {
    /// Unrolled iterations N (100 for the classifiers).
    public var iterations: Int
    /// Lower bound of h and its initial value (`min_val` = 1e-5).
    public var floor: Float = 1e-5
    /// Cap each example's max(h) at max(x) by a stop-gradient scale (`enable_h_column_normalization`).
    public var normalizeColumns: Bool = true

    /// Dense or active-set (sparse) products; not stored with the model (`FISTAKernel`).
    public var kernel: FISTAKernel = .automatic

    /// Test hook: replaces the stop-gradient step η and scales s (N×B) by recorded values, so the
    /// analytic gradient can be checked by finite differences of the same function.
    var frozen: (step: Float, scales: [Float])? = nil

    enum CodingKeys: String, CodingKey { case iterations, floor, normalizeColumns = "normalize_columns" }

    public static func == (a: FISTASettings, b: FISTASettings) -> Bool {
        a.iterations == b.iterations && a.floor == b.floor && a.normalizeColumns == b.normalizeColumns
    }

    /// Settings with `iterations` unrolled steps and the paper's other defaults.
    public init(iterations: Int = 100, floor: Float = 1e-5, normalizeColumns: Bool = true, kernel: FISTAKernel = .automatic) {
        self.kernel = kernel
        self.iterations = iterations
        self.floor = floor
        self.normalizeColumns = normalizeColumns
    }
}

/// What the forward pass keeps for the backward pass: every iteration's momentum point Z_t and
/// pre-clamp value U_t (each B×K, one row per example), the stop-gradient scales s_t, the Gram
/// matrix A = W_xᵀW_x and the step η. The batch is split into column chunks that run on their own
/// threads; chunk c keeps its iterations contiguously (`n × B_c × K` starting at `n·c0·K`).
public struct FISTATape: Sendable {
    let batch: Int, basis: Int, iterations: Int
    let chunks: [Range<Int>]
    var z: [Float]        // Z_t per chunk and iteration (Z_0 = floor)
    var u: [Float]        // U_t = Z_t − η(Z_t A − XᵀW); overwritten by Ū_t in backward
    var scales: [Float]   // N × B
    var momentum: [Float] // N: β_t
    var gram: [Float]     // K×K
    /// The forward pass's sparsity.
    public let statistics: FISTAStatistics
    /// Entries at or above the floor per chunk and iteration (`chunk · N + t`).
    let activeCounts: [Int]
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
/// all N iterations exactly as autograd would through this graph. Examples are independent given
/// W, so the batch is split over `ComputeThreads`, each chunk with single-threaded BLAS.
public enum FISTAInference {
    /// The momentum coefficients β_0…β_{N−1} of the official code's sequence.
    static func momentumSequence(_ n: Int) -> [Float] {
        var m: Float = 1
        return (0..<n).map { _ in
            let next = (1 + (1 + 4 * m * m).squareRoot()) / 2
            defer { m = next }
            return (m - 1) / next
        }
    }

    /// Runs the inference. `wx`: d×K, `x`: d×B (one column per example). Returns Hᵀ (B×K) and,
    /// when `keepTape`, what `backward` needs.
    public static func forward(wx: Matrix, x: Matrix, settings: FISTASettings, keepTape: Bool) -> (hT: Matrix, tape: FISTATape?) {
        let r = forwardWithStatistics(wx: wx, x: x, settings: settings, keepTape: keepTape, threads: ComputeThreads.count)
        return (r.hT, r.tape)
    }

    /// `forward` with an explicit number of chunks (threads), started from `start` (B×K) instead of
    /// the floor when given: `Z_0 = H_{−1} = start`, as `fista_right_update(…, H_tran_init)` does (the
    /// factorized RNN warm-starts h_t from h_{t−1}, research/pfc.md §2.2). `backward` follows the tape's chunks.
    static func forward(wx: Matrix, x: Matrix, settings: FISTASettings, keepTape: Bool, threads: Int,
                        start: Matrix? = nil) -> (hT: Matrix, tape: FISTATape?) {
        let r = forwardWithStatistics(wx: wx, x: x, settings: settings, keepTape: keepTape, threads: threads, start: start)
        return (r.hT, r.tape)
    }

    /// What a forward pass derives from W_x alone: A = W_xᵀW_x, the stop-gradient step η = 1/λmax(A)
    /// (power iteration, research/pfc.md §1.2) and 1ᵀA (the active-set form's constant part).
    typealias Constants = (gram: Matrix, eta: Float, gramSums: [Float])

    /// The `Constants` of `wx`.
    static func gramAndStep(_ wx: Matrix) -> Constants {
        let gram = Matrix.product(wx, wx, transA: .transposed)
        let l = gram.storage.withUnsafeBufferPointer { PowerIteration.largestEigenvalue(of: $0.baseAddress!, k: wx.cols) }
        // 1ᵀA: A is symmetric, so its column sums are its row sums.
        return (gram, l > 0 ? 1 / l : 1, gram.rowSums())
    }

    /// How one iteration forms Z A: the dense Gram product (B_c·K² multiply-adds), the active-set
    /// split (`ActiveSetProduct`), or the factored dense form (Z W_xᵀ) W_x (2·B_c·K·d), the cheapest
    /// dense one once K > 2d (K = 2000 at d = 784: 0.78× the Gram product).
    enum Product { case gram, sparse, factored }

    /// `.automatic` takes the cheapest of the three by the planned split's estimated cost and
    /// `factoredCost` (both relative to the Gram product); the sparse split only below
    /// `ActiveSetProduct.worthIt`. `.sparse` always splits, `.dense` is always the Gram product.
    @inline(__always)
    static func choose(_ kernel: FISTAKernel, _ plan: ActiveSetProduct, counts: UnsafePointer<Int32>, indices: UnsafePointer<Int32>,
                       factoredCost: Float) -> Product {
        switch kernel {
        case .dense: return .gram
        case .sparse: _ = plan.relativeCost(counts: counts, indices: indices); return .sparse
        case .automatic:
            let cost = plan.relativeCost(counts: counts, indices: indices)
            if cost < ActiveSetProduct.worthIt && cost < factoredCost { return .sparse }
            return factoredCost < 1 ? .factored : .gram
        }
    }

    /// Whether an iteration runs the sparse products: `.automatic` plans the split of the chunk's
    /// sparse operand (`ActiveSetProduct`) and takes it when its estimated cost is below
    /// `ActiveSetProduct.worthIt` of the dense product's.
    @inline(__always)
    static func runsSparse(_ kernel: FISTAKernel, _ plan: ActiveSetProduct, counts: UnsafePointer<Int32>, indices: UnsafePointer<Int32>) -> Bool {
        if kernel == .dense { return false }
        let cost = plan.relativeCost(counts: counts, indices: indices)
        return kernel == .sparse || cost < ActiveSetProduct.worthIt
    }

    /// `forward` that also returns the pass's sparsity (and notes it for `FISTAStatistics.lastTraining`
    /// / `lastPrediction` on this thread).
    ///
    /// Active-set form (research/pfc.md §1.2; issue 14). Every entry the clamp sends to the floor is
    /// exactly `floor·s_t[b]`, so the momentum point is `Z_{t+1} = c_{t+1}·1ᵀ + S_{t+1}` per example with
    /// `c_{t+1} = h₀ + β_t (h₀ − h₀')`, `h₀ = floor·s_t`, `h₀' = floor·s_{t−1}` (the value every such
    /// entry gets in the dense update, bit for bit) and S_{t+1} non-zero only on the union of the
    /// active sets 𝒜_t ∪ 𝒜_{t−1} (𝒜_t = {k : U_t[b,k] ≥ floor}). Then
    /// `Z A = c·(1ᵀA) + S A`, and `S A` gathers only the rows of A = W_xᵀW_x listed in S. Each chunk
    /// picks the sparse or the dense product per iteration from S's measured density; the first
    /// iteration (Z_0 = start) is always dense.
    static func forwardWithStatistics(wx: Matrix, x: Matrix, settings: FISTASettings, keepTape: Bool, threads: Int,
                                      start: Matrix? = nil, prepared: Constants? = nil)
        -> (hT: Matrix, tape: FISTATape?, statistics: FISTAStatistics)
    {
        precondition(wx.rows == x.rows, "W_x has \(wx.rows) rows but x has \(x.rows) features")
        let d = x.rows, b = x.cols, k = wx.cols, n = max(1, settings.iterations)
        if let start { precondition(start.rows == b && start.cols == k, "start must be B×K") }
        let startValues = start?.storage ?? [Float](repeating: settings.floor, count: b * k)
        let (gram, computedEta, gramSums) = prepared ?? gramAndStep(wx)
        let eta: Float = settings.frozen?.step ?? computedEta
        let xMax = x.columnMaxima()
        let momentum = momentumSequence(n)
        let chunks = ComputeThreads.ranges(b, parts: threads)
        let zSlots = keepTape ? n : 2, uSlots = keepTape ? n : 1
        // Every slot is written before it is read, so the buffers need no clearing (and a training
        // tape's come back from the last backward pass: no page faults per batch).
        var zs = TapeBuffers.take(zSlots * b * k)
        var us = TapeBuffers.take(uSlots * b * k)
        var scales = [Float](repeating: 1, count: n * b)
        var hT = Matrix(rows: b, cols: k)
        let frozenScales = settings.frozen?.scales
        let floor = settings.floor, normalize = settings.normalizeColumns, kernel = settings.kernel.resolved(entries: b * k * n)
        let warm = start != nil
        let buildLists = kernel != .dense // the dense engine needs no active-set lists
        // The factored product's cost relative to the dense Gram one (`Product.factored`).
        let factoredCost = Float(2 * d) / Float(k) * ActiveSetProduct.factoredOverhead
        // Per chunk and iteration: entries at or above the floor, and whether the product ran sparse.
        var activeCounts = [Int](repeating: 0, count: chunks.count * n)
        var sparseRuns = [Int](repeating: 0, count: chunks.count)
        // A cancelled caller (ComputeCancellation) ends the iterations early and discards the result.
        let cancellation = ComputeCancellation.current

        zs.withUnsafeMutableBufferPointer { zAll in
        us.withUnsafeMutableBufferPointer { uAll in
        scales.withUnsafeMutableBufferPointer { sAll in
        hT.storage.withUnsafeMutableBufferPointer { hOut in
        startValues.withUnsafeBufferPointer { st in
        x.storage.withUnsafeBufferPointer { xp in
        wx.storage.withUnsafeBufferPointer { wp in
        gram.storage.withUnsafeBufferPointer { ap in
        gramSums.withUnsafeBufferPointer { gsp in
        activeCounts.withUnsafeMutableBufferPointer { acp in
        sparseRuns.withUnsafeMutableBufferPointer { srp in
            let (zBase, uBase, sBase, hBase) = (zAll.baseAddress!, uAll.baseAddress!, sAll.baseAddress!, hOut.baseAddress!)
            let (stBase, xBase, wBase, aBase) = (st.baseAddress!, xp.baseAddress!, wp.baseAddress!, ap.baseAddress!)
            let (colSum, acBase, srBase) = (gsp.baseAddress!, acp.baseAddress!, srp.baseAddress!)
            ComputeThreads.run(chunks.count) { c in
                let c0 = chunks[c].lowerBound, bc = chunks[c].count, kb = bc * k
                // ηXᵀW for this chunk: (B_c×d)(d×K), X's columns c0… with leading dimension B.
                let e = UnsafeMutablePointer<Float>.allocate(capacity: kb)
                let hpb = UnsafeMutablePointer<Float>.allocate(capacity: kb)
                let hcb = UnsafeMutablePointer<Float>.allocate(capacity: kb)
                // S_{t+1} of every row: its non-zero columns and −η·value, and c_{t+1}.
                let sIdx = UnsafeMutablePointer<Int32>.allocate(capacity: kb)
                let sVal = UnsafeMutablePointer<Float>.allocate(capacity: kb)
                let sCnt = UnsafeMutablePointer<Int32>.allocate(capacity: bc)
                let zConst = UnsafeMutablePointer<Float>.allocate(capacity: bc)
                let sPrev = UnsafeMutablePointer<Float>.allocate(capacity: bc)
                defer { for p in [e, hpb, hcb, sVal, zConst, sPrev] { p.deallocate() }; sIdx.deallocate(); sCnt.deallocate() }
                sPrev.initialize(repeating: 1, count: bc)
                BLAS.gemm(.transposed, .none, m: bc, n: k, k: d, alpha: eta, a: xBase + c0, lda: b,
                          b: wBase, ldb: k, beta: 0, c: e, ldc: k)
                hpb.update(from: stBase + c0 * k, count: kb) // H_{−1} = start
                let zRegion = zBase + zSlots * c0 * k, uRegion = uBase + uSlots * c0 * k
                zRegion.update(from: stBase + c0 * k, count: kb) // Z_0 = start
                var hp = hpb, hc = hcb
                // From the floor, Z_0 = floor·1ᵀ: S_0 is empty and Z_0 A = floor·(1ᵀA) (issue 14).
                var sValid = buildLists && !warm
                if sValid {
                    sCnt.initialize(repeating: 0, count: bc)
                    zConst.initialize(repeating: floor, count: bc)
                }
                let plan = ActiveSetProduct(rows: bc, k: k)
                let zw: UnsafeMutablePointer<Float>? = kernel == .automatic && factoredCost < 1 ? .allocate(capacity: bc * d) : nil
                defer { zw?.deallocate() }
                for t in 0..<n {
                    if let cancellation, cancellation.isCancelled { break }
                    let beta = momentum[t]
                    let z = zRegion + (keepTape ? t : t % 2) * kb
                    let zNext = zRegion + (keepTape ? t + 1 : (t + 1) % 2) * kb
                    let u = uRegion + (keepTape ? t : 0) * kb
                    // U = Z + ηXᵀW − η Z A
                    let product: Product = sValid ? choose(kernel, plan, counts: sCnt, indices: sIdx, factoredCost: factoredCost)
                                                  : (kernel == .automatic && factoredCost < 1 ? .factored : .gram)
                    if product == .sparse {
                        // Z A = c·(1ᵀA) + S A
                        for r in 0..<bc {
                            let row = r * k
                            FISTARowKernels.affine(k: k, z: z + row, e: e + row, cr: -eta * zConst[r], colSum: colSum, into: u + row)
                        }
                        plan.prepare(counts: sCnt, indices: sIdx, values: sVal)
                        plan.multiply(a: aBase, out: u, counts: sCnt, indices: sIdx, values: sVal)
                        srBase[c] += 1
                    } else if product == .factored {
                        // Z A = (Z W_xᵀ) W_x: 2·B_c·K·d multiply-adds instead of B_c·K², cheaper for K > 2d.
                        for i in 0..<kb { u[i] = z[i] + e[i] }
                        BLAS.gemm(.none, .transposed, m: bc, n: d, k: k, alpha: 1, a: z, lda: k, b: wBase, ldb: k, beta: 0, c: zw!, ldc: d)
                        BLAS.gemm(.none, .none, m: bc, n: k, k: d, alpha: -eta, a: zw!, lda: d, b: wBase, ldb: k, beta: 1, c: u, ldc: k)
                    } else {
                        for i in 0..<kb { u[i] = z[i] + e[i] }
                        BLAS.gemm(.none, .none, m: bc, n: k, k: k, alpha: -eta, a: z, lda: k, b: aBase, ldb: k, beta: 1, c: u, ldc: k)
                    }
                    let writeNext = t + 1 < n // Z_N is never consumed
                    var active = 0
                    // The split costs at least S's density, and S ⊇ 𝒜_t: when the last iteration's
                    // active fraction says the next product will be dense, skip listing S.
                    let listing = buildLists && (kernel == .sparse || t == 0 || Float(acBase[c * n + t - 1]) < ActiveSetProduct.worthIt * Float(kb))
                    for r in 0..<bc {
                        let row = r * k
                        // hc = max(U, floor), its active count and row maximum (one fused pass).
                        let (alive, rowMax) = FISTARowKernels.clamp(k: k, u: u + row, floor: floor, into: hc + row)
                        active += alive
                        var s: Float = 1
                        if let frozen = frozenScales {
                            s = frozen[t * b + c0 + r]
                        } else if normalize && rowMax > xMax[c0 + r] {
                            s = xMax[c0 + r] / rowMax
                        }
                        sBase[t * b + c0 + r] = s
                        if writeNext {
                            // Every entry off 𝒜_t ∪ 𝒜_{t−1} comes out as exactly this constant.
                            let h0 = floor * s, hp0 = floor * sPrev[r]
                            let cst = h0 + beta * (h0 - hp0)
                            zConst[r] = cst
                            sPrev[r] = s
                            // H = s·hc, Z_{t+1} = H + β(H − H_{t−1}) and, when listing, S_{t+1}'s entries
                            // (those differing from c_{t+1}, value −η(Z − c)) in one pass.
                            let cnt = FISTARowKernels.momentum(k: k, hc: hc + row, hp: hp + row, scale: s, beta: beta, constant: cst,
                                                               negEta: -eta, zNext: zNext + row,
                                                               indices: listing ? sIdx + row : nil, values: listing ? sVal + row : nil)
                            sCnt[r] = Int32(truncatingIfNeeded: cnt)
                        } else if s != 1 {
                            for j in 0..<k { hc[row + j] *= s }
                        }
                    }
                    acBase[c * n + t] = active
                    // After the first iteration, S_{t+1} lists every entry that differs from c_{t+1}
                    // (a warm start with β_0 ≠ 0 would leave Z_1 dense; β_0 is 0).
                    sValid = listing && !(t == 0 && warm && beta != 0)
                    swap(&hp, &hc)
                }
                (hBase + c0 * k).update(from: hp, count: kb)
            }
        }
        }
        }
        }
        }
        }
        }
        }
        }
        }
        }
        var fractions = [Float](repeating: 0, count: n)
        for t in 0..<n {
            var a = 0
            for c in chunks.indices { a += activeCounts[c * n + t] }
            fractions[t] = Float(a) / Float(max(1, b * k))
        }
        let stats = FISTAStatistics(examples: b, basis: k, activeFraction: fractions,
                                    sparseFraction: Float(sparseRuns.reduce(0, +)) / Float(max(1, chunks.count * n)),
                                    training: keepTape)
        FISTAStatistics.note(stats)
        guard keepTape else { return (hT, nil, stats) }
        return (hT, FISTATape(batch: b, basis: k, iterations: n, chunks: chunks, z: zs, u: us, scales: scales,
                              momentum: momentum, gram: gram.storage, statistics: stats, activeCounts: activeCounts, step: eta), stats)
    }

    /// Backward pass through all N iterations.
    ///
    /// Consumes the tape (its U buffer is overwritten). Given ∂L/∂Hᵀ (B×K) for the output, returns
    /// ∂L/∂W_x (d×K) and ∂L/∂x (d×B). With
    /// Ū_t = H̄_t ⊙ s_t ⊙ [U_t ≥ floor], H̄_t = [t = N−1]·ḡ + (1+β_t) Z̄_{t+1} − β_{t+1} Z̄_{t+2} and
    /// Z̄_t = Ū_t − η Ū_t A:  Ā = −η Σ_t Ū_tᵀ Z_t, B̄ = η Σ_t Ū_t (the adjoint of XᵀW), so
    /// W̄ = W(Ā + Āᵀ) + X B̄ and X̄ = W B̄ᵀ.
    ///
    /// Active-set form (issue 14): Ū_t is zero off 𝒜_t (the clamp's mask), so where it is sparse
    /// enough `Ū_t A` gathers the rows of A on 𝒜_t and `Ū_tᵀ Z_t` scatters each example's Z_t row
    /// into the rows of Ā on 𝒜_t; dense iterations keep the BLAS products. The stop-gradient scales
    /// and the momentum terms are exactly those of the dense form.
    ///
    /// `columns` (the sliding window's, research/pfc.md §3): only those columns of ∂L/∂W_x are
    /// needed, and the others are left zero. Then Ā is formed only where W̄ reads it,
    /// W̄[:, 𝒞] = W (Ā[:, 𝒞] + Ā[𝒞, :]ᵀ) + X B̄[:, 𝒞], which costs 2·B·K·|𝒞| per iteration instead of
    /// B·K² (the Ū_tᵀ Z_t products were a third of a K 2000 training step). ∂L/∂x is unchanged.
    public static func backward(
        tape: inout FISTATape, wx: Matrix, x: Matrix, gradHT: Matrix, settings: FISTASettings, columns: Range<Int>? = nil
    ) -> (gradWx: Matrix, gradX: Matrix) {
        let g = backwardWithStart(tape: &tape, wx: wx, x: x, gradHT: gradHT, settings: settings, needsStart: false, columns: columns)
        return (g.gradWx, g.gradX)
    }

    /// `backward` that also returns ∂L/∂start (B×K). Because β_0 = 0 the start reaches the output
    /// only through Z_0, so ∂L/∂start = Z̄_0 = Ū_0 − η Ū_0 A. Without `needsStart` that last product
    /// is skipped and gradStart is zero.
    static func backwardWithStart(
        tape: inout FISTATape, wx: Matrix, x: Matrix, gradHT: Matrix, settings: FISTASettings, needsStart: Bool = true,
        columns: Range<Int>? = nil
    ) -> (gradWx: Matrix, gradX: Matrix, gradStart: Matrix) {
        let b = tape.batch, k = tape.basis, n = tape.iterations, d = x.rows
        precondition(gradHT.rows == b && gradHT.cols == k, "gradient shape mismatch")
        let eta = tape.step, floor = settings.floor, kernel = settings.kernel.resolved(entries: b * k * n)
        let buildLists = kernel != .dense
        let factoredCost = Float(2 * d) / Float(k) * ActiveSetProduct.factoredOverhead
        let chunks = tape.chunks, beta = tape.momentum, activeCounts = tape.activeCounts
        let cancellation = ComputeCancellation.current  // a cancelled caller discards the gradient
        let parts = chunks.count
        // Windowed: W̄'s columns lo ..< lo + wc only; each chunk keeps Ā[:, 𝒞] (K×wc) then Ā[𝒞, :] (wc×K).
        let window = columns.map { $0.clamped(to: 0..<k) }
        let lo = window?.lowerBound ?? 0, wc = window?.count ?? k
        let partialSize = window == nil ? k * k : 2 * k * wc
        var partialA = [Float](repeating: 0, count: parts * partialSize)
        var partialW = [Float](repeating: 0, count: parts * d * k)
        var gradX = Matrix(rows: d, cols: b)
        var gradStart = Matrix(rows: b, cols: k)

        tape.u.withUnsafeMutableBufferPointer { uAll in
        tape.z.withUnsafeBufferPointer { zAll in
        tape.scales.withUnsafeBufferPointer { sAll in
        tape.gram.withUnsafeBufferPointer { ap in
        gradHT.storage.withUnsafeBufferPointer { gp in
        partialA.withUnsafeMutableBufferPointer { pA in
        partialW.withUnsafeMutableBufferPointer { pW in
        gradX.storage.withUnsafeMutableBufferPointer { gx in
        gradStart.storage.withUnsafeMutableBufferPointer { gs in
        x.storage.withUnsafeBufferPointer { xp in
        wx.storage.withUnsafeBufferPointer { wp in
            let gsBase = gs.baseAddress!
            let (uBase, zBase, sBase, aBase, gBase) = (uAll.baseAddress!, zAll.baseAddress!, sAll.baseAddress!, ap.baseAddress!, gp.baseAddress!)
            let (pABase, pWBase, gxBase, xBase, wBase) = (pA.baseAddress!, pW.baseAddress!, gx.baseAddress!, xp.baseAddress!, wp.baseAddress!)
            ComputeThreads.run(parts) { c in
                let c0 = chunks[c].lowerBound, bc = chunks[c].count, kb = bc * k
                let uRegion = uBase + n * c0 * k, zRegion = zBase + n * c0 * k
                var zb1 = UnsafeMutablePointer<Float>.allocate(capacity: kb) // Z̄_{t+1}
                var zb2 = UnsafeMutablePointer<Float>.allocate(capacity: kb) // Z̄_{t+2}
                let bb = UnsafeMutablePointer<Float>.allocate(capacity: kb)  // Σ Ū_t, scaled by η below
                // Ū_t of every row on its active set 𝒜_t (the clamp's mask): columns and −η·value.
                let uIdx = UnsafeMutablePointer<Int32>.allocate(capacity: kb)
                let uVal = UnsafeMutablePointer<Float>.allocate(capacity: kb)
                let uCnt = UnsafeMutablePointer<Int32>.allocate(capacity: bc)
                // Iterations whose Ā term was scattered sparsely (the others go to one stacked product).
                var sparseAt = [Bool](repeating: false, count: n)
                let plan = ActiveSetProduct(rows: bc, k: k)
                let zw: UnsafeMutablePointer<Float>? = kernel == .automatic && factoredCost < 1 ? .allocate(capacity: bc * d) : nil
                defer { zw?.deallocate() }
                defer { for p in [zb1, zb2, bb, uVal] { p.deallocate() }; uIdx.deallocate(); uCnt.deallocate() }
                zb1.initialize(repeating: 0, count: kb)
                zb2.initialize(repeating: 0, count: kb)
                bb.initialize(repeating: 0, count: kb)
                let pAc = pABase + c * partialSize
                let g = gBase + c0 * k
                for t in stride(from: n - 1, through: 0, by: -1) {
                    if let cancellation, cancellation.isCancelled { break }
                    let c1 = t + 1 < n ? 1 + beta[t] : 0
                    let c2 = t + 2 < n ? -beta[t + 1] : 0
                    let ub = uRegion + t * kb
                    let isLast = t == n - 1
                    // Ū_t lives on 𝒜_t: list it only when its density leaves the split a chance.
                    let listing = buildLists && (kernel == .sparse || Float(activeCounts[c * n + t]) < ActiveSetProduct.worthIt * Float(kb))
                    for r in 0..<bc {
                        let s = sBase[t * b + c0 + r], row = r * k
                        // H̄ = c1·Z̄_{t+1} + c2·Z̄_{t+2} (+ ḡ), Ū_t = mask·H̄·s into ub and zb2 (becomes
                        // Z̄_t after the product below), B̄ += Ū_t, and 𝒜_t's list: one fused pass.
                        let cnt = FISTARowKernels.adjoint(k: k, zb1: zb1 + row, zb2: zb2 + row, g: isLast ? g + row : nil, c1: c1, c2: c2,
                                                          ub: ub + row, floor: floor, scale: s, bb: bb + row, negEta: -eta,
                                                          indices: listing ? uIdx + row : nil, values: listing ? uVal + row : nil)
                        uCnt[r] = Int32(truncatingIfNeeded: cnt)
                    }
                    // Z̄_t = Ū_t − η Ū_t A (at t = 0 that is ∂L/∂start). Ū_t is zero off 𝒜_t.
                    // Z̄_0 only matters as ∂L/∂start.
                    let productNeeded = t > 0 || needsStart
                    if listing && FISTAInference.runsSparse(kernel, plan, counts: uCnt, indices: uIdx) {
                        plan.prepare(counts: uCnt, indices: uIdx, values: uVal)
                        if productNeeded { plan.multiply(a: aBase, out: zb2, counts: uCnt, indices: uIdx, values: uVal) }
                        // Ā_c += −η Ū_tᵀ Z_t: Z_t's rows scattered into the rows of Ā on 𝒜_t (windowed:
                        // the narrow dense products below are cheaper).
                        if window == nil {
                            plan.accumulateTransposed(z: zRegion + t * kb, c: pAc, counts: uCnt, indices: uIdx, values: uVal)
                            sparseAt[t] = true
                        }
                    } else if productNeeded, let zw {
                        // Ū_t A = (Ū_t W_xᵀ) W_x, the cheaper dense form for K > 2d (`Product.factored`).
                        BLAS.gemm(.none, .transposed, m: bc, n: d, k: k, alpha: 1, a: ub, lda: k, b: wBase, ldb: k, beta: 0, c: zw, ldc: d)
                        BLAS.gemm(.none, .none, m: bc, n: k, k: d, alpha: -eta, a: zw, lda: d, b: wBase, ldb: k, beta: 1, c: zb2, ldc: k)
                    } else if productNeeded {
                        BLAS.gemm(.none, .none, m: bc, n: k, k: k, alpha: -eta, a: ub, lda: k, b: aBase, ldb: k, beta: 1, c: zb2, ldc: k)
                    }
                    swap(&zb1, &zb2) // zb1 = Z̄_t, zb2 = Z̄_{t+1}
                }
                if needsStart { (gsBase + c0 * k).update(from: zb1, count: kb) }
                for i in 0..<kb { bb[i] *= eta }
                // Ā_c += −η Σ_t Ū_tᵀ Z_t over the dense iterations: one product per run of consecutive
                // iterations over the chunk's stacked (run·B_c)×K tapes.
                var t0 = window == nil ? 0 : n
                if window != nil, wc > 0 {
                    // Ā[:, 𝒞] = −η Σ_t Ū_tᵀ Z_t[:, 𝒞] and Ā[𝒞, :] = −η Σ_t Ū_t[:, 𝒞]ᵀ Z_t over all n·B_c tape rows.
                    BLAS.gemm(.transposed, .none, m: k, n: wc, k: n * bc, alpha: -eta, a: uRegion, lda: k,
                              b: zRegion + lo, ldb: k, beta: 1, c: pAc, ldc: wc)
                    BLAS.gemm(.transposed, .none, m: wc, n: k, k: n * bc, alpha: -eta, a: uRegion + lo, lda: k,
                              b: zRegion, ldb: k, beta: 1, c: pAc + k * wc, ldc: k)
                }
                while t0 < n {
                    if sparseAt[t0] { t0 += 1; continue }
                    var t1 = t0
                    while t1 < n && !sparseAt[t1] { t1 += 1 }
                    BLAS.gemm(.transposed, .none, m: k, n: k, k: (t1 - t0) * bc, alpha: -eta, a: uRegion + t0 * kb, lda: k,
                              b: zRegion + t0 * kb, ldb: k, beta: 1, c: pAc, ldc: k)
                    t0 = t1
                }
                // X_c B̄_c: (d×B_c)(B_c×K), and X̄_c = W B̄_cᵀ: (d×K)(K×B_c) into columns c0… of X̄.
                if wc > 0 {
                    BLAS.gemm(.none, .none, m: d, n: wc, k: bc, alpha: 1, a: xBase + c0, lda: b, b: bb + lo, ldb: k,
                              beta: 0, c: pWBase + c * d * k + lo, ldc: k)
                }
                BLAS.gemm(.none, .transposed, m: d, n: bc, k: k, alpha: 1, a: wBase, lda: k, b: bb, ldb: k,
                          beta: 0, c: gxBase + c0, ldc: b)
            }
        }
        }
        }
        }
        }
        }
        }
        }
        }
        }
        }

        // S = Σ_c (Ā_c + Ā_cᵀ), then W̄ = W S + Σ_c X_c B̄_c (windowed: S[:, 𝒞] and W̄[:, 𝒞] only).
        var gradW = Matrix(rows: d, cols: k, storage: Array(partialW[0..<(d * k)]))
        for c in 1..<max(1, parts) {
            let off = c * d * k
            for i in 0..<(d * k) { gradW.storage[i] += partialW[off + i] }
        }
        if window == nil {
            var sym = Matrix(rows: k, cols: k)
            for c in 0..<parts {
                let off = c * k * k
                for i in 0..<k { for j in 0..<k { sym.storage[i * k + j] += partialA[off + i * k + j] + partialA[off + j * k + i] } }
            }
            gradW.accumulateProduct(wx, sym)
        } else if wc > 0 {
            var sym = Matrix(rows: k, cols: wc)
            for c in 0..<parts {
                let off = c * partialSize, rowsOff = off + k * wc
                for i in 0..<k { for j in 0..<wc { sym.storage[i * wc + j] += partialA[off + i * wc + j] + partialA[rowsOff + j * k + i] } }
            }
            wx.storage.withUnsafeBufferPointer { wp in
                sym.storage.withUnsafeBufferPointer { sp in
                    gradW.storage.withUnsafeMutableBufferPointer { gp in
                        BLAS.gemm(.none, .none, m: d, n: wc, k: k, alpha: 1, a: wp.baseAddress!, lda: k, b: sp.baseAddress!, ldb: wc,
                                  beta: 1, c: gp.baseAddress! + lo, ldc: k)
                    }
                }
            }
        }
        // The tape is consumed: its large buffers serve the next forward pass.
        TapeBuffers.give(&tape.z)
        TapeBuffers.give(&tape.u)
        return (gradW, gradX, gradStart)
    }
}

/// Large tape buffers (Z_t and U_t of a batch: N × B × K floats each) kept between a backward pass
/// and the next forward pass, so training does not map, fault in and clear tens to hundreds of MB
/// per batch. Contents are unspecified (the forward pass writes every slot before reading it).
/// Bounded: at most `maxBuffers` buffers and `maxBytes` in all; a buffer still shared with a copy of
/// its tape stays correct by copy-on-write (the forward pass then writes a fresh copy).
enum TapeBuffers {
    static let maxBuffers = 6
    static let maxBytes = 512 << 20 // one K 2000 training tape (B 200, N 100: 2 × 160 MB) fits
    private static let pool = Mutex<[[Float]]>([])

    /// A buffer of exactly `count` floats, contents unspecified.
    static func take(_ count: Int) -> [Float] {
        if let reused = pool.withLock({ p -> [Float]? in
            guard let i = p.firstIndex(where: { $0.count == count }) else { return nil }
            return p.remove(at: i)
        }) { return reused }
        return [Float](unsafeUninitializedCapacity: count) { _, n in n = count }
    }

    /// Returns `buffer` to the pool (it is left empty); the oldest buffers go when the pool is full.
    static func give(_ buffer: inout [Float]) {
        guard !buffer.isEmpty else { return }
        let b = buffer
        buffer = []
        guard b.count * 4 <= maxBytes else { return }
        pool.withLock { p in
            p.append(b)
            while p.count > maxBuffers || p.reduce(0, { $0 + $1.count * 4 }) > maxBytes { p.removeFirst() }
        }
    }
}
