import Foundation
import Testing
@testable import Linalg
@testable import NPEFF
@testable import PFC

@Suite struct PerturbationTests {
    let x: Matrix = {
        var rng = SeededRandom(seed: 4)
        return rng.uniformMatrix(rows: 6, cols: 1)
    }()

    /// For small δ, KL(p_θ ‖ p_{θ+δ}) ≈ ½ δᵀ F δ = ½ Σ_c (a_c·δ)² (npeff.md §5, "Theory"), within 5%.
    @Test(arguments: [(ModelKind.mlp, PredictiveLikelihood.softmax), (.pfc, .softmax), (.pfc2, .softmax), (.mlp, .gaussian), (.pfc, .gaussian)])
    func klMatchesQuadraticFormOfTheFisher(kind: ModelKind, likelihood: PredictiveLikelihood) {
        let net = smallNetwork(kind, x: x)
        let fac = FisherFactors.compute(net, example: x, likelihood: likelihood, classThreshold: 0)
        let theta = net.flatParameters
        var rng = SeededRandom(seed: 31)
        for trial in 0..<3 {
            var delta = theta.map { _ in rng.uniform() * 2 - 1 }
            if trial == 0 { delta = fac.vectors[0] } // along a Fisher direction
            // Scale δ so the predicted KL is about 1e-7: small enough for second order, large enough for Float logits.
            var quad = 0.0
            for a in fac.vectors { let d = zip(a, delta).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }; quad += 0.5 * d * d }
            let s = Float((1e-7 / quad).squareRoot())
            delta = delta.map { $0 * s }
            let predicted = quad * Double(s) * Double(s)
            let perturbed = net.withFlatParameters(zip(theta, delta).map { $0 + $1 })
            let kl = GuidedPerturbation.klDivergences(net.predict(x), perturbed.predict(x), likelihood: likelihood)[0]
            #expect(abs(kl - predicted) < 0.05 * predicted, "\(kind) \(likelihood): KL \(kl) vs ½δᵀFδ \(predicted)")
        }
    }

    @Test func lrmDirectionRejectsOnlyDissimilarComponents() {
        var rng = SeededRandom(seed: 3)
        let m = 12
        let g0 = (0..<m).map { _ in rng.normal() }
        var g1 = (0..<m).map { _ in rng.normal() }
        let proj = zip(g0, g1).reduce(0) { $0 + $1.0 * $1.1 } / zip(g0, g0).reduce(0) { $0 + $1.0 * $1.1 }
        g1 = zip(g1, g0).map { $0 - proj * $1 + 0.15 * $1 } // |cos(g0, g1)| small but non-zero
        let g2 = zip(g0, g1).map { $0 + 0.1 * $1 }           // |cos(g0, g2)| > 0.35: left alone
        let d = LRMNPEFFDecomposition(w: Matrix(rows: 1, cols: 3, repeating: 1), g: Matrix([g0, g1, g2]),
                                      keptColumns: Array(0..<m).map { $0 * 2 }, parameterCount: 2 * m, losses: [])
        let v = GuidedPerturbation.lrmDirection(d, component: 0)
        #expect(v.count == 2 * m)
        #expect(stride(from: 1, to: 2 * m, by: 2).allSatisfy { v[$0] == 0 })
        let vk = stride(from: 0, to: 2 * m, by: 2).map { v[$0] }
        #expect(abs(vk.reduce(0) { $0 + $1 * $1 } - 1) < 1e-5)
        #expect(abs(cosine(vk, g1)) < 1e-5)
        #expect(abs(cosine(vk, g2)) > 0.35)
        #expect(cosine(vk, g0) > 0.9)
    }

    @Test func dDirectionIsTheFisherWeightedBlend() {
        let h = Matrix([[0, 3, 4, 0], [1, 1, 1, 1]])
        let d = DNPEFFDecomposition(w: Matrix(rows: 1, cols: 2), h: h, keptColumns: [0, 1, 2, 3], parameterCount: 4, losses: [])
        let fisher: [Float] = [1, 2, 2, 4] // ‖·‖ = 5
        let u = GuidedPerturbation.dDirection(d, component: 0, datasetFisher: fisher, lossGradientSign: [1, -1, 1, 1], lambda: 0.25)
        #expect(u[0] == 0 && u[3] == 0)
        let c1: Float = 0.6, d1: Float = 0.4
        #expect(abs(u[1] - (-(0.25 * c1) / (0.75 * d1 + 0.25 * c1))) < 1e-6)
        #expect(u[2] > 0 && u[2] < 1)
    }

    func dataset(_ n: Int) -> LabeledDataset {
        var rng = SeededRandom(seed: 8)
        return LabeledDataset(features: rng.uniformMatrix(rows: n, cols: 6), labels: (0..<n).map { $0 % 3 }, classes: 3)
    }

    @Test func evaluationTriesBothSignsAndReportsRatios() {
        let net = smallNetwork(.mlp, x: x)
        let data = dataset(12)
        var rng = SeededRandom(seed: 2)
        let offset = GuidedPerturbation.scaled((0..<net.parameterCount).map { _ in rng.normal() }, magnitude: 0.1)
        #expect(abs(offset.reduce(0) { $0 + $1 * $1 }.squareRoot() - 0.1) < 1e-5)
        let norms: [Float] = (0..<12).map { Float($0 + 1) }
        let same = GuidedPerturbation.evaluate(net, offset: offset, data: data, top: [0, 1, 2], baseline: [0, 1, 2], norms: norms, likelihood: .softmax)
        #expect(same.bySign.map(\.sign) == [1, -1])
        #expect(abs(same.best.klRatio - 1) < 1e-9 && abs(same.best.pefNormRatio - 1) < 1e-9)
        let r = GuidedPerturbation.evaluate(net, offset: offset, data: data, top: [9, 10, 11], baseline: Array(0..<12), norms: norms, likelihood: .softmax)
        #expect(abs(r.best.pefNormRatio - 11.0 / 6.5) < 1e-9)
        #expect(r.best.klRatio == r.bySign.map(\.klRatio).max()!)
        #expect(r.bySign.allSatisfy { $0.topKL > 0 && $0.baselineKL > 0 })
        #expect(GuidedPerturbation.topExamples(coefficients: Matrix([[1, 0], [3, 1], [2, 5]]), component: 0, count: 2) == [1, 2])
    }

    @Test func klTargetingHitsTheRange() {
        let net = smallNetwork(.mlp, x: x)
        let data = dataset(10)
        let d = DNPEFFDecomposition(w: Matrix(rows: 10, cols: 1), h: Matrix(rows: 1, cols: net.parameterCount, repeating: 1),
                                    keptColumns: Array(0..<net.parameterCount), parameterCount: net.parameterCount, losses: [])
        let top = [0, 1, 2]
        let s = GuidedPerturbation.lossGradientSign(net, data: data, examples: top)
        let fisher = PEFComputer.diagonal(net, data: data, options: PEFOptions(topK: 5)).datasetFisher
        // Targets far below and above the starting point (δ = 0.1, λ = 0.5) too: the search must not lose its way
        // when one coordinate's move invalidates what the other learnt.
        for target in [0.01...0.02, 1e-6...1.5e-6, 1e-4...1.2e-4, 0.2...0.25] {
            let found = GuidedPerturbation.targetKL(net, data: data, top: top, targetKL: target, likelihood: .softmax) { lambda in
                GuidedPerturbation.dDirection(d, component: 0, datasetFisher: fisher, lossGradientSign: s, lambda: lambda)
            }
            let perturbed = net.withFlatParameters(zip(net.flatParameters, found.offset).map { $0 + $1 })
            let kl = GuidedPerturbation.klDivergences(net.predict(data.batch(top).x), perturbed.predict(data.batch(top).x), likelihood: .softmax)
            let mean = kl.reduce(0, +) / 3
            #expect(target.contains(mean), "target \(target): δ \(found.delta) λ \(found.lambda) KL \(mean)")
            #expect(abs(found.kl - mean) <= 1e-9 * max(mean, 1e-30), "the returned KL is that of the returned offset")
        }
    }
}

@Suite struct PFCPartMappingTests {
    @Test func massLandsOnItsBasisColumn() {
        let pfc = NetworkFactory.make(Architecture(kind: .pfc, inputDim: 3, outputDim: 2, basis: 4, iterations: 2), seed: 1)
        // wx is 3×4 (positions 0..<12), wy 2×4 (12..<20): put mass on column 2 of both.
        let s = PFCPartMapping.shares(mass: [1, 3], keptColumns: [1 * 4 + 2, 12 + 0 * 4 + 2], network: pfc)
        #expect(s.shares == [[0, 0, 1, 0]] && s.unassigned == 0)

        let res = NetworkFactory.make(Architecture(kind: .pfc2, inputDim: 3, outputDim: 2, basis: 4, iterations: 2), seed: 1)
        // wx1 3×4, wy1 3×4, wx2 3×4 (24..<36): column 1 of block 1.
        let r = PFCPartMapping.shares(mass: [1, 1], keptColumns: [0, 24 + 5], network: res)
        #expect(r.shares[0][0] == 0.5 && r.shares[1][1] == 0.5)

        let mlp = NetworkFactory.make(Architecture(kind: .mlp, inputDim: 3, outputDim: 2, basis: 4), seed: 1)
        // w1 4×3 (0..<12), b1 4 (12..<16), w2 2×4 (16..<24), b2 2 (24..<26).
        let m = PFCPartMapping.shares(mass: [1, 1, 1, 1], keptColumns: [3, 13, 16 + 5, 25], network: mlp)
        #expect(m.shares == [[0, 0.75, 0, 0]] && m.unassigned == 0.25)
    }

    @Test func lrmMassIsTheSquaredComponent() {
        let pfc = NetworkFactory.make(Architecture(kind: .pfc, inputDim: 2, outputDim: 2, basis: 2, iterations: 2), seed: 1)
        let d = LRMNPEFFDecomposition(w: Matrix(rows: 1, cols: 1), g: Matrix([[1, -3]]), keptColumns: [0, 1], parameterCount: 8, losses: [])
        let s = PFCPartMapping.shares(d, component: 0, network: pfc)
        #expect(abs(s.shares[0][0] - 0.1) < 1e-12 && abs(s.shares[0][1] - 0.9) < 1e-12)
    }
}
