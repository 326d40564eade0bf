// LRMNPEFF: decomposition of low-rank PEFs F_i = Σ_c a_ic a_icᵀ into Σ_j W_ij g_j g_jᵀ (npeff.md §3), with the
// reference code's updates: multiplicative for W, plain gradient descent for G. Only inner products
// (A Gᵀ, G Gᵀ, Wᵀ W) are formed, never an m' × m' matrix.
import Linalg

/// Settings of an LRM-NPEFF run (defaults: `run_m_npeff`'s flags, npeff.md §7).
public struct LRMNPEFFOptions: Sendable, Equatable {
    /// Number of components r.
    public var components: Int
    /// G-only steps with W frozen at its initialisation (`--n_iters_G_only`).
    public var gOnlyIterations: Int
    /// Joint steps {W step, G step} (`--n_iters_joint`).
    public var jointIterations: Int
    /// η of the G step G ← G − 4η[…] (`--learning_rate_G`, 1e-3).
    public var learningRate: Float
    /// η of the G-only phase (`--learning_rate_G_G_only`, defaults to `learningRate`).
    public var gOnlyLearningRate: Float?
    /// ε of the W step (`--mu_eps`, 1e-9).
    public var muEpsilon: Float
    /// s of the optional penalty s‖GGᵀ − τI‖_F², τ = 2/r (0: off).
    public var orthogonalRegularization: Float
    /// Seed (`--rand_gen_seed`, 32497).
    public var seed: UInt64
    /// Record the loss every this many steps (`--log_loss_frequency`, 10).
    public var logEvery: Int

    /// Options with the reference code's defaults.
    public init(components: Int, gOnlyIterations: Int, jointIterations: Int, learningRate: Float = 1e-3,
                gOnlyLearningRate: Float? = nil, muEpsilon: Float = 1e-9, orthogonalRegularization: Float = 0,
                seed: UInt64 = 32497, logEvery: Int = 10) {
        self.components = components
        self.gOnlyIterations = gOnlyIterations
        self.jointIterations = jointIterations
        self.learningRate = learningRate
        self.gOnlyLearningRate = gOnlyLearningRate
        self.muEpsilon = muEpsilon
        self.orthogonalRegularization = orthogonalRegularization
        self.seed = seed
        self.logEvery = logEvery
    }
}

/// One recorded loss of a run.
public struct LossRecord: Sendable, Equatable {
    /// "g_only", "joint_expansion_only" or "joint".
    public var phase: String
    /// Step within the phase (1-based).
    public var step: Int
    /// Σ_i ‖F_i − Σ_j W_ij g_j g_jᵀ‖_F².
    public var loss: Double
}

/// An LRM-NPEFF decomposition: W (n×r) ≥ 0 and G (r×m'), H_j = g_j g_jᵀ.
public struct LRMNPEFFDecomposition: Sendable {
    /// Coefficients, n × r.
    public var w: Matrix
    /// Components, r × m' (row j is g_j over the kept positions).
    public var g: Matrix
    /// Model parameter index of every column of `g`.
    public var keptColumns: [Int]
    /// m, the model's parameter count.
    public var parameterCount: Int
    /// The recorded losses.
    public var losses: [LossRecord]

    /// g_j ← g_j/‖g_j‖, W_ij ← W_ij‖g_j‖², so ‖g_j g_jᵀ‖_F = 1 and W G-products are unchanged
    /// (npeff.md §3, `normalize_components_to_unit_norm`).
    public func normalizedToUnitNorm() -> LRMNPEFFDecomposition {
        var out = self
        for j in 0..<g.rows {
            var s: Float = 0
            for p in 0..<g.cols { s += g[j, p] * g[j, p] }
            guard s > 0 else { continue }
            let inv = 1 / s.squareRoot()
            for p in 0..<g.cols { out.g[j, p] *= inv }
            for i in 0..<w.rows { out.w[i, j] *= s }
        }
        return out
    }
}

/// The LRM-NPEFF solver.
public enum LRMNPEFF {
    /// The data of a run: A ((Σ r_i) × m'), its transpose, example row groups and tr_xx = Σ_i ‖F_i‖_F².
    struct Problem {
        let a: SparseRows, at: SparseRows, groups: [Int], trXX: Double
        init(_ a: SparseRows, groups: [Int]) {
            self.a = a
            self.at = a.transposed()
            self.groups = groups
            self.trXX = LRMNPEFF.sumOfSquaredFrobeniusNorms(a, groups: groups)
        }
    }

    /// Σ_i ‖Σ_c a_ic a_icᵀ‖_F² = Σ_i Σ_{c,k} (a_ic·a_ik)², from sparse dot products (the correct version of
    /// `compute_tr_xx.h`, which npeff.md §3 notes over-counts).
    static func sumOfSquaredFrobeniusNorms(_ a: SparseRows, groups: [Int]) -> Double {
        func sparseDot(_ x: Int, _ y: Int) -> Double {
            var (p, q, s) = (a.rowOffsets[x], a.rowOffsets[y], 0.0)
            while p < a.rowOffsets[x + 1] && q < a.rowOffsets[y + 1] {
                if a.columns[p] == a.columns[q] { s += Double(a.values[p]) * Double(a.values[q]); p += 1; q += 1 }
                else if a.columns[p] < a.columns[q] { p += 1 } else { q += 1 }
            }
            return s
        }
        var total = 0.0
        for g in 0..<(groups.count - 1) {
            for x in groups[g]..<groups[g + 1] { for y in groups[g]..<groups[g + 1] { let d = sparseDot(x, y); total += d * d } }
        }
        return total
    }

    /// Per-step intermediates: AG = A Gᵀ, GG = G Gᵀ, N_ij = Σ_c AG[(i,c), j]² = g_jᵀ F_i g_j, HH = GG ∘ GG.
    struct Products { var ag: Matrix, gg: Matrix, n: Matrix, hh: Matrix }

    static func products(_ p: Problem, gt: Matrix) -> Products {
        let ag = p.a.times(gt)
        let gg = Matrix.product(gt, gt, transA: .transposed)
        let r = gt.cols, examples = p.groups.count - 1
        var n = Matrix(rows: examples, cols: r)
        for i in 0..<examples {
            for row in p.groups[i]..<p.groups[i + 1] { for j in 0..<r { let v = ag.storage[row * r + j]; n.storage[i * r + j] += v * v } }
        }
        var hh = gg
        for e in 0..<hh.count { hh.storage[e] *= hh.storage[e] }
        return Products(ag: ag, gg: gg, n: n, hh: hh)
    }

    /// tr_xx − 2⟨W, N⟩ + ⟨WᵀW, HH⟩.
    static func loss(_ p: Problem, w: Matrix, _ x: Products) -> Double {
        p.trXX - 2 * DNPEFF.dot(w, x.n) + DNPEFF.dot(Matrix.product(w, w, transA: .transposed), x.hh)
    }

    /// G step on the components `rows` (columns of Gᵀ): ∇_G L = 4[((WᵀW) ∘ GG) G − W̃ᵀ A] with
    /// W̃[(i,c), j] = W_ij AG[(i,c), j] (npeff.md §3, "G-step"), plus 4s(GGᵀ − τI)G when regularised; G ← G − η∇.
    static func gStep(_ p: Problem, gt: inout Matrix, w: Matrix, _ x: Products, learningRate: Float,
                      orthogonal s: Float, rows: Range<Int>) {
        let r = gt.cols
        var m = Matrix.product(w, w, transA: .transposed)
        for e in 0..<m.count { m.storage[e] *= x.gg.storage[e] }
        if s != 0 {
            let tau = 2 / Float(r) // m'σ² with σ² = 2/(r m')
            for j in 0..<r { for k in 0..<r { m[j, k] += s * (x.gg[j, k] - (j == k ? tau : 0)) } }
        }
        var wTilde = x.ag
        for i in 0..<(p.groups.count - 1) {
            for row in p.groups[i]..<p.groups[i + 1] { for j in 0..<r { wTilde.storage[row * r + j] *= w.storage[i * r + j] } }
        }
        var grad = Matrix.product(gt, m)       // Gᵀ (WᵀW ∘ GG): m' × r
        grad.add(p.at.times(wTilde), scaledBy: -1) // − Aᵀ W̃
        let step = 4 * learningRate
        for q in 0..<gt.rows { for j in rows { gt.storage[q * r + j] -= step * grad.storage[q * r + j] } }
    }

    /// One phase of a schedule: which coefficient columns and component rows change, and η.
    struct Phase { var name: String, iterations: Int, wColumns: Range<Int>, gRows: Range<Int>, learningRate: Float }

    /// Runs `phases` from (w, gt); logs every `logEvery` steps and after each phase's last step.
    static func run(_ p: Problem, w: inout Matrix, gt: inout Matrix, phases: [Phase], options: LRMNPEFFOptions,
                    onLog: ((LossRecord) -> Void)?, shouldStop: (() -> Bool)? = nil) -> [LossRecord] {
        var losses = [LossRecord]()
        schedule: for phase in phases where phase.iterations > 0 {
            for step in 1...phase.iterations {
                if shouldStop?() == true { break schedule }
                let x = products(p, gt: gt) // AG and GG do not depend on W: reused by both steps
                if !phase.wColumns.isEmpty {
                    DNPEFF.multiplicativeUpdate(&w, x.n, Matrix.product(w, x.hh), options.muEpsilon, cols: phase.wColumns)
                }
                if step % max(1, options.logEvery) == 0 || step == phase.iterations {
                    let record = LossRecord(phase: phase.name, step: step, loss: loss(p, w: w, x))
                    losses.append(record)
                    onLog?(record)
                }
                gStep(p, gt: &gt, w: w, x, learningRate: phase.learningRate, orthogonal: options.orthogonalRegularization,
                      rows: phase.gRows)
            }
        }
        return losses
    }

    /// Factorises the PEF rows `a` ((Σ r_i) × m', example i owning rows `groups[i]..<groups[i+1]`).
    /// Initialisation: W ~ U(0,1), G ~ N(0, 2/(r m')) (npeff.md §3, "Initialization").
    /// `shouldStop` is asked before every step and ends the run early (a cancelled job) when true.
    public static func factorize(_ a: SparseRows, groups: [Int], options: LRMNPEFFOptions,
                                 onLog: ((LossRecord) -> Void)? = nil, shouldStop: (() -> Bool)? = nil) -> (w: Matrix, g: Matrix, losses: [LossRecord]) {
        let r = options.components, m = a.cols
        precondition(r >= 1 && groups.last == a.rows, "need ≥ 1 component and groups covering every row")
        var rng = SeededRandom(seed: options.seed)
        var w = rng.uniformMatrix(rows: groups.count - 1, cols: r)
        var gt = gaussianComponents(rows: r, cols: m, totalComponents: r, rng: &rng).transposed()
        let p = Problem(a, groups: groups)
        let phases = [
            Phase(name: "g_only", iterations: options.gOnlyIterations, wColumns: 0..<0, gRows: 0..<r,
                  learningRate: options.gOnlyLearningRate ?? options.learningRate),
            Phase(name: "joint", iterations: options.jointIterations, wColumns: 0..<r, gRows: 0..<r, learningRate: options.learningRate),
        ]
        let losses = run(p, w: &w, gt: &gt, phases: phases, options: options, onLog: onLog, shouldStop: shouldStop)
        return (w, gt.transposed(), losses)
    }

    /// G rows ~ N(0, σ²), σ = √(2/(r_total·m')).
    static func gaussianComponents(rows: Int, cols: Int, totalComponents: Int, rng: inout SeededRandom) -> Matrix {
        let sigma = (2 / (Float(totalComponents) * Float(max(1, cols)))).squareRoot()
        var g = Matrix(rows: rows, cols: cols)
        for e in 0..<g.count { g.storage[e] = sigma * rng.normal() }
        return g
    }

    /// Runs LRM-NPEFF on (normally pruned) LRM-PEFs.
    public static func fit(_ pefs: LowRankPEFs, options: LRMNPEFFOptions, onLog: ((LossRecord) -> Void)? = nil,
                           shouldStop: (() -> Bool)? = nil) -> LRMNPEFFDecomposition {
        let (w, g, losses) = factorize(pefs.matrix, groups: pefs.exampleOffsets, options: options, onLog: onLog, shouldStop: shouldStop)
        return LRMNPEFFDecomposition(w: w, g: g, keptColumns: pefs.keptColumns, parameterCount: pefs.parameterCount, losses: losses)
    }

    /// Fits coefficients of fixed components `g` (r × m', columns = `keptColumns`) to new LRM-PEFs: N and HH are
    /// computed once, then W ~ U(0,1) gets `iterations` steps W ← W ∘ N ⊘ (W HH + ε); each costs O(n r²)
    /// (npeff.md §4, "Fitting"). `afterStep(step)` runs after each step; returning false ends the fit there.
    public static func fitCoefficients(_ pefs: LowRankPEFs, components g: Matrix, keptColumns: [Int], iterations: Int,
                                       epsilon: Float = 1e-9, seed: UInt64 = 32497, afterStep: ((Int) -> Bool)? = nil) -> Matrix {
        let a = pefs.restricted(toParameters: keptColumns).matrix
        precondition(a.cols == g.cols, "components have \(g.cols) positions, expected \(a.cols)")
        let gt = g.transposed()
        var x = Matrix(rows: pefs.count, cols: g.rows)
        let ag = a.times(gt)
        let r = g.rows
        for i in 0..<pefs.count {
            for row in pefs.exampleOffsets[i]..<pefs.exampleOffsets[i + 1] { for j in 0..<r { let v = ag[row, j]; x[i, j] += v * v } }
        }
        var hh = Matrix.product(g, g, transB: .transposed)
        for e in 0..<hh.count { hh.storage[e] *= hh.storage[e] }
        var rng = SeededRandom(seed: seed)
        var w = rng.uniformMatrix(rows: pefs.count, cols: r)
        for step in 1...max(1, iterations) where iterations > 0 {
            DNPEFF.multiplicativeUpdate(&w, x, Matrix.product(w, hh), epsilon)
            if afterStep?(step) == false { break }
        }
        return w
    }

    /// Component-set expansion (npeff.md §4, "Expansion"): G = [G_e; G_f] with G_f = `base.g` frozen and
    /// `newComponents` rows G_e ~ N(0, 2/((r_f + r_e) m')); W = [W_e | W_f] ~ U(0,1). Phases: `gOnlyIterations` (G_e only),
    /// `expansionOnlyIterations` (W_e and G_e), `jointIterations` (all of W, G_e).
    public static func expand(_ base: LRMNPEFFDecomposition, on pefs: LowRankPEFs, newComponents: Int,
                              expansionOnlyIterations: Int, options: LRMNPEFFOptions,
                              onLog: ((LossRecord) -> Void)? = nil) -> LRMNPEFFDecomposition {
        let a = pefs.restricted(toParameters: base.keptColumns).matrix
        let re = newComponents, r = re + base.g.rows
        var rng = SeededRandom(seed: options.seed)
        var w = rng.uniformMatrix(rows: pefs.count, cols: r)
        let ge = gaussianComponents(rows: re, cols: a.cols, totalComponents: r, rng: &rng)
        var gt = Matrix(rows: r, cols: a.cols, storage: ge.storage + base.g.storage).transposed()
        let p = Problem(a, groups: pefs.exampleOffsets)
        let phases = [
            Phase(name: "g_only", iterations: options.gOnlyIterations, wColumns: 0..<0, gRows: 0..<re,
                  learningRate: options.gOnlyLearningRate ?? options.learningRate),
            Phase(name: "joint_expansion_only", iterations: expansionOnlyIterations, wColumns: 0..<re, gRows: 0..<re,
                  learningRate: options.learningRate),
            Phase(name: "joint", iterations: options.jointIterations, wColumns: 0..<r, gRows: 0..<re, learningRate: options.learningRate),
        ]
        let losses = run(p, w: &w, gt: &gt, phases: phases, options: options, onLog: onLog)
        return LRMNPEFFDecomposition(w: w, g: gt.transposed(), keptColumns: base.keptColumns,
                                     parameterCount: base.parameterCount, losses: losses)
    }
}
