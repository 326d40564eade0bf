import Foundation
import Testing
@testable import Linalg
@testable import NPEFF
@testable import PFC

/// Freezes a block's stop-gradient step and scales at their values for `x`, so finite differences see the
/// function the backward pass differentiates (as Tests/PFCTests/GradientCheck.swift does).
func freeze(_ block: inout PFCBlock, on x: Matrix) {
    let act = block.forward(x, keepTape: true)
    block.settings.frozen = act.stopGradients
}

/// A small network of `kind` with weights of order 0.1–1 (so Float finite differences resolve gradients),
/// its stop-gradients frozen on `x`.
func smallNetwork(_ kind: ModelKind, x: Matrix, classes: Int = 3) -> any SeededBackward {
    let arch = Architecture(kind: kind, inputDim: x.rows, outputDim: classes, basis: 5, iterations: 10)
    var net = NetworkFactory.make(arch, seed: 11)
    var rng = SeededRandom(seed: 13)
    if kind != .mlp {
        net.parameters = net.parameters.map {
            Parameter(name: $0.name, value: rng.uniformMatrix(rows: $0.value.rows, cols: $0.value.cols, low: 0.02, high: 0.6),
                      nonnegative: true)
        }
    }
    switch net {
    case var c as PFCClassifier:
        freeze(&c.block, on: x)
        return c
    case var r as ResidualPFCNetwork:
        // A small W_y1 keeps r = x − y1 above the floor, away from the clamp's kink (second-order tests need smoothness).
        r.first.wy.scale(by: 0.05)
        freeze(&r.first, on: x)
        freeze(&r.second, on: r.residual(x, r.first.forward(x, keepTape: false).y))
        return r
    default:
        return net as! MLPClassifier
    }
}

@Suite struct PEFTests {
    let x: Matrix = {
        var rng = SeededRandom(seed: 4)
        return rng.uniformMatrix(rows: 6, cols: 1)
    }()

    /// ⟨a_c/√p_c, D⟩ against the central difference of log p_c (softmax) or ŷ_j (Gaussian) along random D.
    @Test(arguments: [(ModelKind.pfc, PredictiveLikelihood.softmax), (.pfc2, .softmax), (.mlp, .softmax),
                      (.pfc, .gaussian), (.pfc2, .gaussian), (.mlp, .gaussian)])
    func perClassGradientsMatchFiniteDifferences(kind: ModelKind, likelihood: PredictiveLikelihood) {
        let net = smallNetwork(kind, x: x)
        let fac = FisherFactors.compute(net, example: x, likelihood: likelihood, classThreshold: 0)
        #expect(fac.classes == [0, 1, 2])
        let theta = net.flatParameters
        var rng = SeededRandom(seed: 21)
        func value(_ params: [Float], _ c: Int) -> Double {
            let y = net.withFlatParameters(params).predict(x).storage
            return likelihood == .gaussian ? Double(y[c]) : Double(logf(FisherFactors.softmax(y)[c]))
        }
        for (slot, c) in fac.classes.enumerated() {
            let weight = likelihood == .gaussian ? 1 : fac.probabilities[c].squareRoot()
            for _ in 0..<3 {
                let eps: Float = 1e-3
                let dir = theta.map { (rng.uniform() * 2 - 1) * (abs($0) + 1e-2) }
                let plus = zip(theta, dir).map { $0 + eps * $1 }, minus = zip(theta, dir).map { $0 - eps * $1 }
                let fPlus: Double = value(plus, c), fMinus: Double = value(minus, c)
                let fd: Double = (fPlus - fMinus) / (2 * Double(eps))
                var analytic: Double = 0, sumSquares: Double = 0
                for (g, d) in zip(fac.vectors[slot], dir) {
                    let t = Double(g / weight) * Double(d)
                    analytic += t; sumSquares += t * t
                }
                let denominator: Double = Swift.max(sumSquares.squareRoot(), Swift.abs(analytic), 1e-6)
                let err: Double = Swift.abs(fd - analytic) / denominator
                #expect(err < 2e-2, "\(kind) \(likelihood) class \(c): fd \(fd) analytic \(analytic)")
            }
        }
    }

    @Test func thresholdSkipsUnlikelyClassesButKeepsTheTopOne() {
        let net = smallNetwork(.mlp, x: x, classes: 4)
        let all = FisherFactors.compute(net, example: x, likelihood: .softmax, classThreshold: 0)
        let cut = all.probabilities.sorted()[1] + 1e-6
        let some = FisherFactors.compute(net, example: x, likelihood: .softmax, classThreshold: cut)
        #expect(some.classes == all.classes.filter { all.probabilities[$0] >= cut })
        let none = FisherFactors.compute(net, example: x, likelihood: .softmax, classThreshold: 2)
        #expect(none.classes.count == 1 && all.probabilities[none.classes[0]] == all.probabilities.max())
    }

    func dataset(_ n: Int, d: Int = 6) -> LabeledDataset {
        var rng = SeededRandom(seed: 8)
        return LabeledDataset(features: rng.uniformMatrix(rows: n, cols: d), labels: (0..<n).map { $0 % 3 }, classes: 3)
    }

    @Test func diagonalPEFsAreNormalisedTopK() {
        let net = smallNetwork(.mlp, x: x)
        let data = dataset(5)
        let k = 7
        let pefs = PEFComputer.diagonal(net, data: data, options: PEFOptions(classThreshold: 0, topK: k))
        #expect(pefs.count == 5 && pefs.matrix.cols == net.parameterCount)
        for i in 0..<5 {
            let fac = FisherFactors.compute(net, example: data.batch([i]).x, likelihood: .softmax, classThreshold: 0)
            // Direct: f = Σ_c p_c g_c², normalised by ‖f‖, then the k largest.
            var f = [Double](repeating: 0, count: net.parameterCount)
            for (slot, _) in fac.classes.enumerated() { for j in f.indices { f[j] += Double(fac.vectors[slot][j] * fac.vectors[slot][j]) } }
            let norm: Double = f.reduce(0.0) { $0 + $1 * $1 }.squareRoot()
            let order = f.indices.sorted { f[$0] > f[$1] }.prefix(k).sorted()
            let row = pefs.matrix.row(i)
            #expect(row.columns.map(Int.init) == order)
            for (c, v) in zip(row.columns, row.values) { #expect(abs(Double(v) - f[Int(c)] / norm) < 1e-5) }
            #expect(abs(Double(pefs.examples.norms[i]) - norm) < 1e-5 * max(1, norm))
        }
        // The dataset Fisher is the mean dense diagonal.
        #expect(pefs.datasetFisher.count == net.parameterCount && pefs.datasetFisher.allSatisfy { $0 >= 0 })
    }

    @Test func lowRankPEFsUseTheFrobeniusNormOfTheDenseFisher() {
        let net = smallNetwork(.mlp, x: x)
        let m = net.parameterCount
        let data = dataset(4)
        let k = 20
        let pefs = PEFComputer.lowRank(net, data: data, options: PEFOptions(classThreshold: 0, topK: k))
        #expect(pefs.count == 4 && pefs.matrix.rows == 12)
        for i in 0..<4 {
            let fac = FisherFactors.compute(net, example: data.batch([i]).x, likelihood: .softmax, classThreshold: 0)
            // ‖F‖_F with F = Σ_c a_c a_cᵀ formed explicitly (m is small here).
            var fro: Double = 0
            for p in 0..<m { for q in 0..<m {
                var e: Double = 0
                for a in fac.vectors { e += Double(a[p]) * Double(a[q]) }
                fro += e * e
            } }
            fro = fro.squareRoot()
            #expect(abs(Double(pefs.examples.norms[i]) - fro) < 1e-4 * fro)
            // Joint top-k over all (class, position) entries by magnitude, scaled by 1/√‖F‖.
            let flat = fac.vectors.flatMap { $0 }
            let top = Set(flat.indices.sorted { abs(flat[$0]) > abs(flat[$1]) }.prefix(k))
            var seen: Int = 0
            for (slot, row) in (pefs.exampleOffsets[i]..<pefs.exampleOffsets[i + 1]).enumerated() {
                let r = pefs.matrix.row(row)
                for (c, v) in zip(r.columns, r.values) {
                    let idx = slot * m + Int(c)
                    #expect(top.contains(idx))
                    let expected: Double = Double(flat[idx]) / fro.squareRoot()
                    #expect(Swift.abs(Double(v) - expected) < 1e-5)
                    seen += 1
                }
            }
            #expect(seen == k)
        }
    }

    @Test func pruningDropsRarelyUsedPositions() {
        let a = SparseRows(dense: Matrix([[1, 0, 2, 0], [0, 0, 3, 0], [4, 0, 5, 6]]))
        let pefs = DiagonalPEFs(matrix: a, parameterCount: 4, keptColumns: [0, 1, 2, 3],
                                examples: PEFExamples(norms: [1, 1, 1], labels: [0, 0, 0], predictions: [0, 0, 0]),
                                datasetFisher: [0, 0, 0, 0])
        let p1 = pefs.pruned(minimumCount: 1)
        #expect(p1.keptColumns == [0, 2, 3])
        #expect(p1.matrix.dense() == Matrix([[1, 2, 0], [0, 3, 0], [4, 5, 6]]))
        let p2 = pefs.pruned(minimumCount: 2)
        #expect(p2.keptColumns == [0, 2])
        #expect(p2.matrix.dense() == Matrix([[1, 2], [0, 3], [4, 5]]))
        // Restricting to a decomposition's positions maps columns by model position.
        #expect(pefs.restricted(toParameters: [2, 3]).matrix.dense() == Matrix([[2, 0], [3, 0], [5, 6]]))
    }
}

@Suite struct TopKSelectionTests {
    /// The reference definition: sort positive magnitudes, keep the k largest, ties to the lower index.
    func naive(_ m: [Float], _ k: Int) -> [Int] {
        Array(m.indices.filter { m[$0] > 0 }.sorted { (m[$0], -$0) > (m[$1], -$1) }.prefix(k)).sorted()
    }

    @Test func selectionMatchesSorting() {
        var rng = SeededRandom(seed: 5)
        for trial in 0..<200 {
            let n = 1 + Int(rng.next() % 300)
            // Few distinct values on odd trials, so ties at the threshold are common.
            let m: [Float] = (0..<n).map { _ in
                let u = rng.uniform()
                if u < 0.2 { return 0 }
                return trial % 2 == 1 ? Float(Int(u * 5)) : u
            }
            for k in [0, 1, 2, n / 3, n / 2, n - 1, n, n + 3] where k >= 0 {
                #expect(topKIndices(m, k) == naive(m, k), "n \(n) k \(k)")
            }
        }
        var all = (0..<1000).map { Float($0 % 17) }
        #expect(selectAscending(&all, 0) == 0 && selectAscending(&all, 999) == 16)
    }
}
