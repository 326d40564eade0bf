// GuidedPerturbation: parameter perturbations along an NPEFF component and their evaluation by the KL ratio
// and the PEF-norm ratio (npeff.md §5).
import Foundation
import Linalg
import PFC

/// How one signed perturbation changed the model's predictions.
public struct PerturbationEvaluation: Sendable, Equatable {
    /// +1 or −1: the sign of the offset tried.
    public var sign: Float
    /// Mean KL(p_θ ‖ p_{θ+δ}) over the component's top examples.
    public var topKL: Double
    /// Mean KL over the baseline examples.
    public var baselineKL: Double
    /// `topKL / baselineKL`.
    public var klRatio: Double
    /// Mean ‖F_i‖_F over the top examples divided by the mean over the baseline (the confound the KL ratio must beat).
    public var pefNormRatio: Double
    /// Accuracy of the perturbed model on the top and the baseline examples, and of the original on the top ones.
    public var topAccuracy: Double, baselineAccuracy: Double, originalTopAccuracy: Double
}

/// Both signs of a perturbation; `best` is the one with the larger KL ratio (npeff.md §5, step 4).
public struct PerturbationResult: Sendable, Equatable {
    /// The evaluation with the larger KL ratio.
    public var best: PerturbationEvaluation
    /// Both evaluations, + first.
    public var bySign: [PerturbationEvaluation]
}

/// Builds and evaluates guided perturbations.
public enum GuidedPerturbation {
    /// Indices of the `count` examples with the largest coefficient of `component` (ties: lower index first).
    public static func topExamples(coefficients w: Matrix, component: Int, count: Int) -> [Int] {
        Array((0..<w.rows).sorted { (w[$0, component], $1) > (w[$1, component], $0) }.prefix(count))
    }

    /// A seeded random subset of `0..<n` of size `count` (the paper's random baseline; the code takes the first ones).
    public static func randomExamples(_ n: Int, count: Int, seed: UInt64) -> [Int] {
        var rng = SeededRandom(seed: seed)
        return Array(rng.permutation(n).prefix(count))
    }

    /// `count` distinct random rows of `n`, in O(count) time and memory (for a handler: `n` may be
    /// hundreds of millions of rows).
    public static func sampledExamples(_ n: Int, count: Int, seed: UInt64) -> [Int] {
        var rng = SeededRandom(seed: seed)
        return rng.sample(n, count: count)
    }

    /// LRM direction for component k (npeff.md §5, "LRM construction"): unit-normalise the rows of G, start from g_k and
    /// sequentially remove (v·g_i) g_i for every i ≠ k with |cos(g_k, g_i)| ≤ `maxAbsCosine` (in index order, against the
    /// non-orthogonalised g_i), normalise, and scatter into a length-m vector at the kept positions.
    public static func lrmDirection(_ d: LRMNPEFFDecomposition, component k: Int, maxAbsCosine: Float = 0.35) -> [Float] {
        let g = d.normalizedToUnitNorm().g
        func dot(_ a: [Float], _ b: [Float]) -> Float { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }
        let gk = g.row(k)
        var v = gk
        for i in 0..<g.rows where i != k {
            let gi = g.row(i)
            guard abs(dot(gk, gi)) <= maxAbsCosine else { continue }
            let c = dot(v, gi)
            for p in v.indices { v[p] -= c * gi[p] }
        }
        return scatter(normalized(v), into: d.parameterCount, at: d.keptColumns)
    }

    /// D-NPEFF offset direction u(λ) = s ∘ [λc ⊘ ((1−λ)d + λc)], so θ = θ₀ − δ·u (npeff.md §5, "D-NPEFF construction"):
    /// c = h_k/‖h_k‖ scattered to all positions, d = the dataset Fisher normalised to unit L2 and floored at `fisherFloor`
    /// (the released code's `tf.minimum` is read as the intended `maximum`), s = sign(Σ_top ∇loss(x, y)).
    public static func dDirection(_ d: DNPEFFDecomposition, component k: Int, datasetFisher: [Float], lossGradientSign s: [Float],
                                  lambda: Float, fisherFloor: Float = 1e-6) -> [Float] {
        let c = scatter(normalized(d.h.row(k)), into: d.parameterCount, at: d.keptColumns)
        let dn = normalized(datasetFisher)
        return (0..<d.parameterCount).map { p in
            let num = lambda * c[p]
            return num == 0 ? 0 : s[p] * num / ((1 - lambda) * max(dn[p], fisherFloor) + num)
        }
    }

    /// sign(Σ_{i ∈ examples} ∇_θ loss(x_i, y_i)) with the network's training loss and the true labels.
    public static func lossGradientSign(_ net: any Network, data: LabeledDataset, examples: [Int]) -> [Float] {
        let (x, labels) = data.batch(examples)
        return net.lossAndGradients(x: x, labels: labels).gradients.flatMap(\.storage).map { $0 > 0 ? 1 : ($0 < 0 ? -1 : 0) }
    }

    /// Per-example KL(p_θ ‖ p_{θ+δ}) between the predictive distributions of two output matrices (C×B).
    public static func klDivergences(_ original: Matrix, _ perturbed: Matrix, likelihood: PredictiveLikelihood) -> [Double] {
        (0..<original.cols).map { b in
            let y0 = original.column(b), y1 = perturbed.column(b)
            switch likelihood {
            case .gaussian: // N(ŷ, I) ‖ N(ŷ', I): ½‖ŷ − ŷ'‖²
                return 0.5 * zip(y0, y1).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }
            case .softmax:
                func logSoftmax(_ y: [Float]) -> [Double] {
                    let mx = Double(y.max() ?? 0)
                    let lse = mx + log(y.reduce(0.0) { $0 + exp(Double($1) - mx) })
                    return y.map { Double($0) - lse }
                }
                let l0 = logSoftmax(y0), l1 = logSoftmax(y1)
                return max(0, zip(l0, l1).reduce(0.0) { $0 + exp($1.0) * ($1.0 - $1.1) })
            }
        }
    }

    /// Evaluates θ ± `offset` (both signs): KL ratio on `top` vs `baseline` examples of `data`, and the PEF-norm ratio from
    /// `norms` (‖F_i‖_F of the same examples, index-aligned with `data`).
    public static func evaluate(_ net: any Network, offset: [Float], data: LabeledDataset, top: [Int], baseline: [Int],
                                norms: [Float], likelihood: PredictiveLikelihood) -> PerturbationResult {
        let theta = net.flatParameters
        let (xTop, yTop) = data.batch(top), (xBase, yBase) = data.batch(baseline)
        let outTop = net.predict(xTop), outBase = net.predict(xBase)
        func mean(_ v: [Double]) -> Double { v.isEmpty ? 0 : v.reduce(0, +) / Double(v.count) }
        func accuracy(_ out: Matrix, _ labels: [Int]) -> Double {
            labels.isEmpty ? 0 : Double(zip(out.columnArgmax(), labels).filter { $0 == $1 }.count) / Double(labels.count)
        }
        let normRatio = mean(top.map { Double(norms[$0]) }) / max(mean(baseline.map { Double(norms[$0]) }), 1e-30)
        let evaluations = [Float(1), -1].map { sign -> PerturbationEvaluation in
            let perturbed = net.withFlatParameters(zip(theta, offset).map { $0 + sign * $1 })
            let pTop = perturbed.predict(xTop), pBase = perturbed.predict(xBase)
            let klTop = mean(klDivergences(outTop, pTop, likelihood: likelihood))
            let klBase = mean(klDivergences(outBase, pBase, likelihood: likelihood))
            return PerturbationEvaluation(sign: sign, topKL: klTop, baselineKL: klBase, klRatio: klTop / max(klBase, 1e-30),
                                          pefNormRatio: normRatio, topAccuracy: accuracy(pTop, yTop),
                                          baselineAccuracy: accuracy(pBase, yBase), originalTopAccuracy: accuracy(outTop, yTop))
        }
        let best = evaluations[0].klRatio >= evaluations[1].klRatio ? evaluations[0] : evaluations[1]
        return PerturbationResult(best: best, bySign: evaluations)
    }

    /// `direction` rescaled to L2 norm `magnitude` (default 0.1, the paper's value).
    public static func scaled(_ direction: [Float], magnitude: Float = 0.1) -> [Float] {
        normalized(direction).map { $0 * magnitude }
    }

    /// D-NPEFF KL targeting (npeff.md §5, `KlTargeter`, made to run): finds (δ, λ) such that the mean KL on `top` lies in
    /// `targetKL`, assuming KL grows with both. Starts at the geometric middle of `deltaRange` and λ = 0.5, then alternates:
    /// move log δ, then λ, toward the side the KL needs; each coordinate starts with half the distance to its bound and
    /// halves its step whenever its direction reverses (the code's backoff factor 2), clamped to `deltaRange` and
    /// λ ∈ [0.035, 0.965], for at most `maxIterations` evaluations. Every returned point was evaluated: the first one in the
    /// range, else the one whose KL is nearest to it (in log). An earlier version bisected fixed brackets, which go stale
    /// when the other coordinate moves, and returned an unevaluated point after the last move.
    /// Returns the offset −δ·u(λ) (the sign convention of the code; `evaluate` tries both signs), δ, λ and the mean KL.
    public static func targetKL(_ net: any Network, data: LabeledDataset, top: [Int], targetKL: ClosedRange<Double>,
                                deltaRange: ClosedRange<Float> = 1e-3...10, maxIterations: Int = 24,
                                likelihood: PredictiveLikelihood, direction: (Float) -> [Float])
        -> (offset: [Float], delta: Float, lambda: Float, kl: Double) {
        let theta = net.flatParameters
        let xTop = data.batch(top).x
        let outTop = net.predict(xTop)
        let (logLo, logHi) = (log(deltaRange.lowerBound), log(deltaRange.upperBound))
        let (lamLo, lamHi): (Float, Float) = (0.035, 0.965)
        var logDelta = (logLo + logHi) / 2, lambda: Float = 0.5
        var stepDelta = (logHi - logLo) / 4, stepLambda = (lamHi - lamLo) / 4
        var lastDeltaUp: Bool? = nil, lastLambdaUp: Bool? = nil
        func miss(_ kl: Double) -> Double { // distance to the range in log KL (0 inside); never a non-finite KL
            guard kl.isFinite else { return .infinity }
            let k = max(kl, 1e-300)
            return k < targetKL.lowerBound ? log(targetKL.lowerBound / k) : (k > targetKL.upperBound ? log(k / targetKL.upperBound) : 0)
        }
        var best: (offset: [Float], delta: Float, lambda: Float, kl: Double)? = nil
        for iteration in 0..<max(1, maxIterations) {
            let o = direction(lambda).map { -exp(logDelta) * $0 }
            let kl = klDivergences(outTop, net.withFlatParameters(zip(theta, o).map { $0 + $1 }).predict(xTop), likelihood: likelihood)
            let meanKL = kl.reduce(0, +) / Double(max(1, kl.count))
            if best == nil || miss(meanKL) < miss(best!.kl) { best = (o, exp(logDelta), lambda, meanKL) }
            if targetKL.contains(meanKL) { break }
            let up = meanKL < targetKL.lowerBound
            if iteration % 2 == 0 {
                if let last = lastDeltaUp, last != up { stepDelta /= 2 }
                lastDeltaUp = up
                logDelta = min(logHi, max(logLo, logDelta + (up ? stepDelta : -stepDelta)))
            } else {
                if let last = lastLambdaUp, last != up { stepLambda /= 2 }
                lastLambdaUp = up
                lambda = min(lamHi, max(lamLo, lambda + (up ? stepLambda : -stepLambda)))
            }
        }
        return best!
    }
}

/// `v / ‖v‖` (zero stays zero).
func normalized(_ v: [Float]) -> [Float] {
    let n = v.reduce(Float(0)) { $0 + $1 * $1 }.squareRoot()
    return n > 0 ? v.map { $0 / n } : v
}

/// A length-`m` vector with `values[j]` at `positions[j]` and zeros elsewhere.
func scatter(_ values: [Float], into m: Int, at positions: [Int]) -> [Float] {
    var out = [Float](repeating: 0, count: m)
    for (v, p) in zip(values, positions) { out[p] = v }
    return out
}
