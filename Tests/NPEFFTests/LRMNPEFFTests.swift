import Testing
@testable import Linalg
@testable import NPEFF

/// Planted LRM data: unit g_j (r × m) on overlapping random supports, W (n × r) ≥ 0, and the PEF rows
/// a_ij = √W_ij g_j (so F_i = Σ_j W_ij g_j g_jᵀ exactly).
func plantedLRM(n: Int, m: Int, r: Int, seed: UInt64) -> (w: Matrix, g: Matrix, pefs: LowRankPEFs) {
    let (w, _, _) = plantedNMF(n: n, m: m, r: r, seed: seed)
    var rng = SeededRandom(seed: seed + 1)
    var g = Matrix(rows: r, cols: m)
    for j in 0..<r {
        for p in 0..<m where rng.uniform() < 0.5 { g[j, p] = rng.normal() }
        let s = (0..<m).reduce(Float(0)) { $0 + g[j, $1] * g[j, $1] }.squareRoot()
        for p in 0..<m { g[j, p] /= s }
    }
    var rows = [[Float]](), offsets = [0]
    for i in 0..<n {
        for j in 0..<r where w[i, j] > 0 { rows.append(g.row(j).map { $0 * w[i, j].squareRoot() }) }
        offsets.append(rows.count)
    }
    let a = SparseRows(dense: Matrix(rows))
    let pefs = LowRankPEFs(matrix: a, exampleOffsets: offsets, rowClasses: Array(repeating: 0, count: rows.count),
                           parameterCount: m, keptColumns: Array(0..<m),
                           examples: PEFExamples(norms: [], labels: [], predictions: []))
    return (w, g, pefs)
}

/// Σ_i ‖F_i − Σ_j W_ij g_j g_jᵀ‖_F² with every F_i formed densely (small m only).
func denseLRMLoss(_ pefs: LowRankPEFs, w: Matrix, g: Matrix) -> Double {
    let a = pefs.matrix.dense(), m = a.cols
    var total = 0.0
    for i in 0..<pefs.count {
        for p in 0..<m { for q in 0..<m {
            var e = 0.0
            for row in pefs.exampleOffsets[i]..<pefs.exampleOffsets[i + 1] { e += Double(a[row, p]) * Double(a[row, q]) }
            for j in 0..<g.rows { e -= Double(w[i, j]) * Double(g[j, p]) * Double(g[j, q]) }
            total += e * e
        } }
    }
    return total
}

@Suite struct LRMNPEFFTests {
    @Test func lossAndGradientMatchDenseComputation() {
        let (_, _, pefs) = plantedLRM(n: 6, m: 8, r: 2, seed: 1)
        var rng = SeededRandom(seed: 2)
        let w = rng.uniformMatrix(rows: 6, cols: 3)
        let g = Matrix(rows: 3, cols: 8, storage: (0..<24).map { _ in rng.normal() * 0.3 })
        let p = LRMNPEFF.Problem(pefs.matrix, groups: pefs.exampleOffsets)
        let x = LRMNPEFF.products(p, gt: g.transposed())
        let direct = denseLRMLoss(pefs, w: w, g: g)
        #expect(abs(LRMNPEFF.loss(p, w: w, x) - direct) < 1e-4 * direct)
        // The G step moves by η∇L = 4η[…] (npeff.md §3): compare ⟨∇L, D⟩ with central differences of the dense loss.
        var gt = g.transposed()
        let eta: Float = 1e-3
        LRMNPEFF.gStep(p, gt: &gt, w: w, x, learningRate: eta, orthogonal: 0, rows: 0..<3)
        let grad = zip(g.transposed().storage, gt.storage).map { ($0 - $1) / eta } // in Gᵀ layout
        let dir = (0..<24).map { _ in rng.uniform() * 2 - 1 }
        let eps: Float = 1e-2
        let plus = Matrix(rows: 8, cols: 3, storage: zip(g.transposed().storage, dir).map { $0 + eps * $1 }).transposed()
        let minus = Matrix(rows: 8, cols: 3, storage: zip(g.transposed().storage, dir).map { $0 - eps * $1 }).transposed()
        let fd = (denseLRMLoss(pefs, w: w, g: plus) - denseLRMLoss(pefs, w: w, g: minus)) / (2 * Double(eps))
        let analytic = zip(grad, dir).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        #expect(abs(fd - analytic) < 2e-2 * max(abs(analytic), 1e-3), "fd \(fd) analytic \(analytic)")
    }

    @Test func recoversPlantedRankOneComponents() {
        let (wTrue, gTrue, pefs) = plantedLRM(n: 60, m: 30, r: 3, seed: 4)
        let opts = LRMNPEFFOptions(components: 3, gOnlyIterations: 20, jointIterations: 1200, learningRate: 2e-3, seed: 5)
        let d = LRMNPEFF.fit(pefs, options: opts)
        let losses = d.losses.map(\.loss)
        #expect(losses.last! < 1e-2 * losses.first!, "losses \(losses.first!) → \(losses.last!)")
        #expect(matchedCoefficientCosine(d.w, wTrue) >= 0.95)
        let n = d.normalizedToUnitNorm()
        for j in 0..<3 {
            let best = (0..<3).map { abs(cosine(gTrue.row(j), n.g.row($0))) }.max()!
            #expect(best >= 0.95)
        }
        #expect(d.w.storage.allSatisfy { $0 >= 0 })
        // Normalising keeps every W_ij g_j g_jᵀ.
        #expect(abs(denseLRMLoss(pefs, w: n.w, g: n.g) - denseLRMLoss(pefs, w: d.w, g: d.g)) < 1e-3 * max(losses.last!, 1e-3))
    }

    @Test func stopRequestEndsBothPhases() {
        let (_, _, pefs) = plantedLRM(n: 30, m: 20, r: 2, seed: 8)
        var asked = 0
        let opts = LRMNPEFFOptions(components: 2, gOnlyIterations: 3, jointIterations: 40, learningRate: 1e-3, logEvery: 1)
        let d = LRMNPEFF.fit(pefs, options: opts, shouldStop: { asked += 1; return asked > 5 })
        // Three G-only steps and two joint steps ran; nothing after the stop.
        #expect(d.losses.map(\.phase) == ["g_only", "g_only", "g_only", "joint", "joint"] && asked == 6)
    }

    @Test func jointLossDecreases() {
        let (_, _, pefs) = plantedLRM(n: 30, m: 20, r: 2, seed: 8)
        let opts = LRMNPEFFOptions(components: 4, gOnlyIterations: 0, jointIterations: 300, learningRate: 1e-3, logEvery: 1)
        let d = LRMNPEFF.fit(pefs, options: opts)
        let losses = d.losses.map(\.loss)
        #expect(losses.count == 300)
        // Monotone until the loss reaches Float cancellation noise (tr_xx − 2⟨W,N⟩ + ⟨WᵀW,HH⟩ ≈ 1e-6 tr_xx).
        let floor = 1e-5 * losses[0]
        let increases = zip(losses, losses.dropFirst()).filter { $1 > $0 * (1 + 1e-4) && $1 > floor }.count
        #expect(increases == 0, "\(losses.suffix(80))")
        #expect(losses.last! < 0.5 * losses.first!)
    }

    @Test func coefficientFittingRecoversPlantedCoefficients() {
        let (wTrue, gTrue, pefs) = plantedLRM(n: 40, m: 30, r: 3, seed: 10)
        let w = LRMNPEFF.fitCoefficients(pefs, components: gTrue, keptColumns: Array(0..<30), iterations: 400)
        for j in 0..<3 { #expect(cosine(w.column(j), wTrue.column(j)) >= 0.99) }
    }

    @Test func expansionLearnsNewComponentsWithFrozenOnes() {
        let (wTrue, gTrue, pefs) = plantedLRM(n: 60, m: 30, r: 3, seed: 4)
        let base = LRMNPEFFDecomposition(w: Matrix(rows: 0, cols: 1), g: Matrix(rows: 1, cols: 30, storage: gTrue.row(2)),
                                         keptColumns: Array(0..<30), parameterCount: 30, losses: [])
        let opts = LRMNPEFFOptions(components: 2, gOnlyIterations: 20, jointIterations: 800, learningRate: 2e-3, seed: 5)
        let e = LRMNPEFF.expand(base, on: pefs, newComponents: 2, expansionOnlyIterations: 200, options: opts)
        #expect(e.g.rows == 3 && e.g.row(2) == gTrue.row(2))
        #expect(e.losses.map(\.phase).contains("joint_expansion_only"))
        #expect(matchedCoefficientCosine(e.w, wTrue) >= 0.95)
    }
}
