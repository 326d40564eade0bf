// DNPEFF: non-negative factorisation of the sparse n × m' D-PEF matrix A ≈ W H (npeff.md §2), with the
// reference code's Lee–Seung multiplicative updates, U(0,1) initialisation and fixed step count.
import Linalg

/// Settings of a D-NPEFF run.
public struct DNPEFFOptions: Sendable, Equatable {
    /// Number of components r.
    public var components: Int
    /// Multiplicative-update steps (`--nmf_max_iter`; no stopping test, as in the code).
    public var iterations: Int
    /// ε added to the denominators (1e-8, hard-coded in `run_nmf_on_pefs.cu`).
    public var epsilon: Float
    /// Seed of the U(0,1) initialisation (the code's hard-coded seed by default).
    public var seed: UInt64
    /// Record the loss every this many steps (the code logs every 10).
    public var logEvery: Int

    /// Options with the reference code's defaults.
    public init(components: Int, iterations: Int, epsilon: Float = 1e-8, seed: UInt64 = 43_190_432_042, logEvery: Int = 10) {
        self.components = components
        self.iterations = iterations
        self.epsilon = epsilon
        self.seed = seed
        self.logEvery = logEvery
    }
}

/// A D-NPEFF decomposition: coefficients W (n×r) and components H (r×m'), H_j = Diag(h_j).
public struct DNPEFFDecomposition: Sendable {
    /// Coefficients, n × r, non-negative.
    public var w: Matrix
    /// Components, r × m' (row j is h_j over the kept positions), non-negative.
    public var h: Matrix
    /// Model parameter index of every column of `h`.
    public var keptColumns: [Int]
    /// m, the model's parameter count.
    public var parameterCount: Int
    /// (step, ‖A − WH‖_F²) every `logEvery` steps and after the last.
    public var losses: [(step: Int, loss: Double)]
}

/// D-NPEFF's multiplicative updates.
public enum DNPEFF {
    /// `x ← x ∘ numerator ⊘ (denominator + ε)` (shapes equal); restricted to columns `cols` when given.
    static func multiplicativeUpdate(_ x: inout Matrix, _ numerator: Matrix, _ denominator: Matrix, _ eps: Float, cols: Range<Int>? = nil) {
        let c = x.cols, range = cols ?? 0..<c
        x.storage.withUnsafeMutableBufferPointer { xp in
        numerator.storage.withUnsafeBufferPointer { np in
        denominator.storage.withUnsafeBufferPointer { dp in
            for i in 0..<x.rows { for j in range { let e = i * c + j; xp[e] *= np[e] / (dp[e] + eps) } }
        }
        }
        }
    }

    /// ⟨X, Y⟩ accumulated in Double.
    static func dot(_ x: Matrix, _ y: Matrix) -> Double {
        var s = 0.0
        for i in 0..<x.count { s += Double(x.storage[i]) * Double(y.storage[i]) }
        return s
    }

    /// Factorises `a` (n × m') as W H. `initialW`/`initialH` replace the random draws; the last `frozenComponents`
    /// rows of H are never updated (component-set expansion: new components first, then the frozen ones, as the LRM
    /// code orders [G_e; G_f], npeff.md §4). `onLog(step, loss)` is called whenever a loss is recorded;
    /// `shouldStop` is asked before every step and ends the run early (a cancelled job) when true.
    public static func factorize(_ a: SparseRows, options: DNPEFFOptions, initialW: Matrix? = nil, initialH: Matrix? = nil,
                                 frozenComponents: Int = 0, onLog: ((Int, Double) -> Void)? = nil, shouldStop: (() -> Bool)? = nil)
        -> (w: Matrix, h: Matrix, losses: [(step: Int, loss: Double)])
    {
        let n = a.rows, m = a.cols, r = options.components
        precondition(r >= 1 && frozenComponents <= r, "need at least one component, and no more frozen than in total")
        var rng = SeededRandom(seed: options.seed)
        var w = initialW ?? rng.uniformMatrix(rows: n, cols: r)
        // H is kept transposed (m' × r) so both sparse products are row gathers: A Hᵀ and Aᵀ W.
        var ht = initialH?.transposed() ?? rng.uniformMatrix(rows: r, cols: m).transposed()
        precondition(w.rows == n && w.cols == r && ht.rows == m && ht.cols == r, "initial factors have the wrong shape")
        let at = a.transposed()
        let aNorm = a.squaredNorm
        let updated = 0..<(r - frozenComponents)
        var losses = [(step: Int, loss: Double)]()
        for step in 1...max(1, options.iterations) where options.iterations > 0 {
            if shouldStop?() == true { break }
            // W ← W ∘ (A Hᵀ) ⊘ (W (H Hᵀ) + ε)
            let aht = a.times(ht)
            let hht = Matrix.product(ht, ht, transA: .transposed)
            multiplicativeUpdate(&w, aht, Matrix.product(w, hht), options.epsilon)
            let wtw = Matrix.product(w, w, transA: .transposed)
            if step % max(1, options.logEvery) == 0 || step == options.iterations {
                // Loss of (W_new, H): ‖A‖² − 2⟨W, A Hᵀ⟩ + ⟨WᵀW, H Hᵀ⟩, from products already at hand.
                let loss = aNorm - 2 * dot(w, aht) + dot(wtw, hht)
                losses.append((step, loss))
                onLog?(step, loss)
            }
            // Hᵀ ← Hᵀ ∘ (Aᵀ W) ⊘ (Hᵀ (WᵀW) + ε)
            if !updated.isEmpty {
                multiplicativeUpdate(&ht, at.times(w), Matrix.product(ht, wtw), options.epsilon, cols: updated)
            }
        }
        return (w, ht.transposed(), losses)
    }

    /// Runs D-NPEFF on (normally pruned) D-PEFs.
    public static func fit(_ pefs: DiagonalPEFs, options: DNPEFFOptions, onLog: ((Int, Double) -> Void)? = nil,
                           shouldStop: (() -> Bool)? = nil) -> DNPEFFDecomposition {
        let (w, h, losses) = factorize(pefs.matrix, options: options, onLog: onLog, shouldStop: shouldStop)
        return DNPEFFDecomposition(w: w, h: h, keptColumns: pefs.keptColumns, parameterCount: pefs.parameterCount, losses: losses)
    }

    /// Fits coefficients of fixed components `h` (r × m', columns = `keptColumns`) to new D-PEFs: the PEFs are
    /// restricted to the same positions, A Hᵀ and H Hᵀ are computed once, then W ~ U(0,1) gets `iterations`
    /// multiplicative updates with ε = 1e-7 (npeff.md §2, `fit_coeffs_to_sparse_H.cu`). `afterStep(step)` runs
    /// after each update; returning false ends the fit there (a cancelled job).
    public static func fitCoefficients(_ pefs: DiagonalPEFs, components h: Matrix, keptColumns: [Int], iterations: Int,
                                       epsilon: Float = 1e-7, seed: UInt64 = 43_190_432_042,
                                       afterStep: ((Int) -> Bool)? = nil) -> Matrix {
        let a = pefs.restricted(toParameters: keptColumns).matrix
        precondition(a.cols == h.cols, "components have \(h.cols) positions, expected \(a.cols)")
        let ht = h.transposed()
        let aht = a.times(ht)                       // cached
        let hht = Matrix.product(h, h, transB: .transposed) // cached
        var rng = SeededRandom(seed: seed)
        var w = rng.uniformMatrix(rows: a.rows, cols: h.rows)
        for step in 1...max(1, iterations) where iterations > 0 {
            multiplicativeUpdate(&w, aht, Matrix.product(w, hht), epsilon)
            if afterStep?(step) == false { break }
        }
        return w
    }

    /// Component-set expansion: learns `newComponents` components on `pefs` (typically a filtered subset, npeff.md §4)
    /// with the components of `base` frozen. Returns a decomposition whose first rows of H are the new components.
    public static func expand(_ base: DNPEFFDecomposition, on pefs: DiagonalPEFs, newComponents: Int, options: DNPEFFOptions)
        -> DNPEFFDecomposition
    {
        let a = pefs.restricted(toParameters: base.keptColumns).matrix
        let rf = base.h.rows, r = newComponents + rf
        var rng = SeededRandom(seed: options.seed)
        let w0 = rng.uniformMatrix(rows: a.rows, cols: r)
        var h0 = Matrix(rows: r, cols: a.cols)
        let fresh = rng.uniformMatrix(rows: newComponents, cols: a.cols)
        h0.storage.replaceSubrange(0..<fresh.count, with: fresh.storage)
        h0.storage.replaceSubrange(fresh.count..<h0.count, with: base.h.storage)
        var o = options
        o.components = r
        let (w, h, losses) = factorize(a, options: o, initialW: w0, initialH: h0, frozenComponents: rf)
        return DNPEFFDecomposition(w: w, h: h, keptColumns: base.keptColumns, parameterCount: base.parameterCount, losses: losses)
    }
}
