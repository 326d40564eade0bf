import Testing
@testable import Linalg
@testable import NPEFF

@Suite struct DNPEFFTests {
    @Test func lossNeverIncreasesAndFactorsStayNonNegative() {
        var rng = SeededRandom(seed: 5)
        var dense = Matrix(rows: 24, cols: 50)
        for i in 0..<dense.count where rng.uniform() < 0.3 { dense.storage[i] = rng.uniform() }
        let a = SparseRows(dense: dense)
        let (w, h, losses) = DNPEFF.factorize(a, options: DNPEFFOptions(components: 4, iterations: 150, logEvery: 1))
        #expect(losses.count == 150)
        for (prev, next) in zip(losses, losses.dropFirst()) {
            #expect(next.loss <= prev.loss * (1 + 1e-5) + 1e-7, "step \(next.step): \(prev.loss) → \(next.loss)")
        }
        // The logged loss at step s is ‖A − W_s H_{s−1}‖²; the returned factors can only be better.
        #expect(directLoss(a, w, h) <= losses.last!.loss * (1 + 1e-4))
        #expect(losses.last!.loss < 0.9 * losses.first!.loss)
        #expect(w.storage.allSatisfy { $0 >= 0 } && h.storage.allSatisfy { $0 >= 0 })
        #expect(w.isFinite && h.isFinite)
    }

    @Test func stopRequestEndsTheRunAtTheNextStep() {
        let (_, _, a) = plantedNMF(n: 15, m: 30, r: 3, seed: 2)
        var asked = 0
        let opts = DNPEFFOptions(components: 3, iterations: 50, logEvery: 1)
        let stopped = DNPEFF.factorize(a, options: opts, shouldStop: { asked += 1; return asked > 4 })
        // Four steps ran, then the run ended: the same factors as a 4-step run.
        let four = DNPEFF.factorize(a, options: DNPEFFOptions(components: 3, iterations: 4, logEvery: 1))
        #expect(stopped.losses.map(\.step) == [1, 2, 3, 4] && stopped.w == four.w && stopped.h == four.h)
    }

    @Test func loggedLossMatchesDirectComputation() {
        let (_, _, a) = plantedNMF(n: 15, m: 30, r: 3, seed: 2)
        var recorded = [Double]()
        let opts = DNPEFFOptions(components: 3, iterations: 7, logEvery: 7)
        _ = DNPEFF.factorize(a, options: opts) { _, l in recorded.append(l) }
        // Recompute: run 6 full steps, then the 7th W step only, and compare.
        let six = DNPEFF.factorize(a, options: DNPEFFOptions(components: 3, iterations: 6, logEvery: 100))
        var w = six.w
        let hht = Matrix.product(six.h, six.h, transB: .transposed)
        DNPEFF.multiplicativeUpdate(&w, a.times(six.h.transposed()), Matrix.product(w, hht), opts.epsilon)
        let direct = directLoss(a, w, six.h)
        #expect(recorded.count == 1 && abs(recorded[0] - direct) < 1e-3 * max(direct, 1e-3))
    }

    @Test func recoversPlantedComponents() {
        let (wTrue, hTrue, a) = plantedNMF(n: 60, m: 80, r: 3, seed: 7)
        let (w, h, _) = DNPEFF.factorize(a, options: DNPEFFOptions(components: 3, iterations: 600, seed: 3))
        #expect(matchedCoefficientCosine(w, wTrue) >= 0.95)
        #expect(matchedCoefficientCosine(h.transposed(), hTrue.transposed()) >= 0.95)
    }

    @Test func coefficientFittingRecoversPlantedCoefficients() {
        let (wTrue, hTrue, a) = plantedNMF(n: 40, m: 60, r: 3, seed: 9)
        let pefs = DiagonalPEFs(matrix: a, parameterCount: 60, keptColumns: Array(0..<60),
                                examples: PEFExamples(norms: [], labels: [], predictions: []), datasetFisher: [])
        let w = DNPEFF.fitCoefficients(pefs, components: hTrue, keptColumns: Array(0..<60), iterations: 300)
        for j in 0..<3 { #expect(cosine(w.column(j), wTrue.column(j)) >= 0.99) }
        // Fitting to a subset of positions uses only those columns.
        let kept = Array(stride(from: 0, to: 60, by: 2))
        let w2 = DNPEFF.fitCoefficients(pefs, components: hTrue.columns(0..<60).transposed().rowsSubset(kept).transposed(),
                                        keptColumns: kept, iterations: 300)
        for j in 0..<3 { #expect(cosine(w2.column(j), wTrue.column(j)) >= 0.97) }
    }

    @Test func coefficientFittingStopsWhenAsked() {
        let (_, hTrue, a) = plantedNMF(n: 40, m: 60, r: 3, seed: 9)
        let pefs = DiagonalPEFs(matrix: a, parameterCount: 60, keptColumns: Array(0..<60),
                                examples: PEFExamples(norms: [], labels: [], predictions: []), datasetFisher: [])
        var seen: [Int] = []
        let stopped = DNPEFF.fitCoefficients(pefs, components: hTrue, keptColumns: Array(0..<60), iterations: 300,
                                             afterStep: { seen.append($0); return $0 < 7 })
        #expect(seen == Array(1...7))
        #expect(stopped == DNPEFF.fitCoefficients(pefs, components: hTrue, keptColumns: Array(0..<60), iterations: 7))
    }

    @Test func expansionLearnsNewComponentsAndKeepsFrozenOnes() {
        let (wTrue, hTrue, a) = plantedNMF(n: 60, m: 80, r: 4, seed: 12)
        let frozenH = hTrue.transposed().columns(2..<4).transposed() // components 2, 3 known
        let base = DNPEFFDecomposition(w: Matrix(rows: 0, cols: 2), h: frozenH, keptColumns: Array(0..<80), parameterCount: 80, losses: [])
        let pefs = DiagonalPEFs(matrix: a, parameterCount: 80, keptColumns: Array(0..<80),
                                examples: PEFExamples(norms: [], labels: [], predictions: []), datasetFisher: [])
        let e = DNPEFF.expand(base, on: pefs, newComponents: 2, options: DNPEFFOptions(components: 2, iterations: 600, seed: 4))
        #expect(e.h.rows == 4)
        #expect(Array(e.h.storage[(2 * 80)...]) == frozenH.storage)
        #expect(matchedCoefficientCosine(e.w, wTrue) >= 0.95)
    }
}

extension Matrix {
    /// Rows `indices` as a new matrix.
    func rowsSubset(_ indices: [Int]) -> Matrix {
        Matrix(rows: indices.count, cols: cols, storage: indices.flatMap { row($0) })
    }
}

@Suite struct SparseProductTests {
    /// The SIMD row kernel (32/16/8/scalar column blocks) and the nnz-balanced row chunks against a dense product.
    @Test(arguments: [1, 3, 8, 13, 16, 24, 32, 45, 70])
    func sparseTimesDenseMatchesDense(r: Int) {
        var rng = SeededRandom(seed: UInt64(r))
        var dense = Matrix(rows: 300, cols: 90)
        for i in 0..<dense.rows { for j in 0..<dense.cols where rng.uniform() < (i < 20 ? 0.9 : 0.2) { dense[i, j] = rng.normal() } }
        let a = SparseRows(dense: dense)
        let b = Matrix(rows: 90, cols: r, storage: (0..<(90 * r)).map { _ in rng.normal() })
        let chunks = a.balancedChunks()
        #expect(chunks.first?.lowerBound == 0 && chunks.last?.upperBound == 300)
        #expect(zip(chunks, chunks.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound && !$0.isEmpty })
        let c = Matrix(rows: 300, cols: r, storage: (0..<(300 * r)).map { _ in rng.normal() })
        for (sparse, reference) in [(a.times(b), Matrix.product(dense, b)), (a.transposed().times(c), Matrix.product(dense, c, transA: .transposed))] {
            #expect(sparse.rows == reference.rows && sparse.cols == reference.cols)
            #expect((0..<sparse.count).allSatisfy { abs(sparse.storage[$0] - reference.storage[$0]) < 1e-3 })
        }
    }
}
