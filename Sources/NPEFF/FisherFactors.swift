// FisherFactors: one example's Fisher as F(x) = Σ_c a_c a_cᵀ (npeff.md §1, "Definitions"), through the
// network's own backward pass (PFC/Explain/SeededBackward.swift).
import Foundation
import Linalg
import PFC

/// The predictive distribution p(y|x) whose Fisher is decomposed.
public enum PredictiveLikelihood: String, Sendable, Codable, CaseIterable {
    /// p = softmax(ŷ): a_c = √p_c ∇log p_c = √p_c Jᵀ(e_c − p). The right choice for cross-entropy models and
    /// the usual one for MSE-to-one-hot models; classes with p_c below the threshold are skipped.
    case softmax
    /// y ~ N(ŷ, I), the likelihood MSE training maximises: F = Σ_j ∇ŷ_j ∇ŷ_jᵀ, a_j = Jᵀe_j for every output j
    /// (no probabilities, so no class is skipped).
    case gaussian
}

/// The factor vectors of one example's Fisher, F = Σ_c a_c a_cᵀ.
public struct ExampleFisherFactors: Sendable {
    /// The network outputs ŷ.
    public var output: [Float]
    /// softmax(ŷ).
    public var probabilities: [Float]
    /// The class (output) index of every factor vector.
    public var classes: [Int]
    /// The vectors a_c, each of length m (flattened parameters).
    public var vectors: [[Float]]

    /// ‖F‖_F = ‖Σ_c a_c a_cᵀ‖_F computed from the C×C Gram matrix: ‖AᵀA‖_F² = Σ_{c,k} (a_c·a_k)² (npeff.md §1,
    /// "Frobenius norm"), never forming an m × m matrix.
    public var frobeniusNorm: Double {
        var total = 0.0
        for c in vectors.indices {
            for k in vectors.indices {
                var dot = 0.0
                for (u, v) in zip(vectors[c], vectors[k]) { dot += Double(u) * Double(v) }
                total += dot * dot
            }
        }
        return total.squareRoot()
    }

    /// The diagonal f = Σ_c a_c² (the D-PEF before normalisation).
    public var diagonal: [Float] {
        guard let first = vectors.first else { return [] }
        var f = [Float](repeating: 0, count: first.count)
        for a in vectors { for i in a.indices { f[i] += a[i] * a[i] } }
        return f
    }
}

/// Computes per-example Fisher factors.
public enum FisherFactors {
    /// softmax of `y`, computed stably.
    public static func softmax(_ y: [Float]) -> [Float] {
        let mx = y.max() ?? 0
        let e = y.map { expf($0 - mx) }
        let s = e.reduce(0, +)
        return e.map { $0 / s }
    }

    /// The factors of example `x` (d×1): for `.softmax`, the classes with p_c ≥ `classThreshold` (the D code's
    /// `min_prob_class`, npeff.md §1; at least the top class is always kept); for `.gaussian`, every output.
    public static func compute(_ net: any SeededBackward, example x: Matrix, likelihood: PredictiveLikelihood,
                               classThreshold: Float) -> ExampleFisherFactors {
        var probs = [Float](), classes = [Int]()
        let (y, grads) = net.seededGradients(example: x) { y in
            let p = softmax(y)
            probs = p
            switch likelihood {
            case .gaussian:
                classes = Array(y.indices)
                return y.indices.map { j in (0..<y.count).map { $0 == j ? Float(1) : 0 } }
            case .softmax:
                let top = p.indices.max { p[$0] < p[$1] } ?? 0
                classes = p.indices.filter { p[$0] >= classThreshold || $0 == top }
                // √p_c (e_c − p): the seed whose vector–Jacobian product is √p_c ∇log p_c.
                return classes.map { c in
                    let s = p[c].squareRoot()
                    return p.indices.map { k in s * ((k == c ? 1 : 0) - p[k]) }
                }
            }
        }
        return ExampleFisherFactors(output: y, probabilities: probs, classes: classes, vectors: grads)
    }
}

/// Indices of the `k` largest `magnitudes` (ties broken by lower index; zeros never kept), ascending.
/// The k-th largest value is found by selection (expected O(n)), not by sorting: the LRM top-K runs over
/// C·m entries per example and sorting them dominated PEF computation.
func topKIndices(_ magnitudes: [Float], _ k: Int) -> [Int] {
    guard k > 0 else { return [] }
    var positive = [Float]()
    positive.reserveCapacity(magnitudes.count)
    for v in magnitudes where v > 0 { positive.append(v) }
    if positive.count <= k { return magnitudes.indices.filter { magnitudes[$0] > 0 } }
    let threshold = selectAscending(&positive, positive.count - k) // the k-th largest
    var above = 0
    for v in magnitudes where v > threshold { above += 1 }
    var ties = k - above
    var out = [Int]()
    out.reserveCapacity(k)
    for (i, v) in magnitudes.enumerated() {
        if v > threshold { out.append(i) } else if v == threshold && ties > 0 { out.append(i); ties -= 1 }
    }
    return out
}

/// The value of rank `t` (0-based, ascending) of `values`, which are reordered: iterative quickselect with a
/// median-of-three pivot and a three-way partition (so runs of equal values cost no extra rounds).
func selectAscending(_ values: inout [Float], _ t: Int) -> Float {
    precondition(t >= 0 && t < values.count, "rank out of range")
    return values.withUnsafeMutableBufferPointer { buf -> Float in
        var lo = 0, hi = buf.count - 1
        while lo < hi {
            let mid = lo + (hi - lo) / 2
            let (a, b, c) = (buf[lo], buf[mid], buf[hi])
            let pivot = max(min(a, b), min(max(a, b), c))
            // Dutch flag: [lo, lt) < pivot, [lt, i) == pivot, (gt, hi] > pivot.
            var lt = lo, i = lo, gt = hi
            while i <= gt {
                let v = buf[i]
                if v < pivot { buf.swapAt(lt, i); lt += 1; i += 1 }
                else if v > pivot { buf.swapAt(i, gt); gt -= 1 }
                else { i += 1 }
            }
            if t < lt { hi = lt - 1 } else if t > gt { lo = gt + 1 } else { return pivot }
        }
        return buf[lo]
    }
}
