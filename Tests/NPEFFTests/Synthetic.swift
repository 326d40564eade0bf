import Foundation
@testable import Linalg
@testable import NPEFF

/// Cosine similarity of two vectors.
func cosine(_ a: [Float], _ b: [Float]) -> Double {
    var ab = 0.0, aa = 0.0, bb = 0.0
    for (x, y) in zip(a, b) { ab += Double(x) * Double(y); aa += Double(x) * Double(x); bb += Double(y) * Double(y) }
    return ab / max((aa * bb).squareRoot(), 1e-30)
}

/// All permutations of 0..<n (n small).
func permutations(_ n: Int) -> [[Int]] {
    if n == 0 { return [[]] }
    return permutations(n - 1).flatMap { p in (0...p.count).map { i in var q = p; q.insert(n - 1, at: i); return q } }
}

/// The worst column cosine between `found` (n×r) and `planted` (n×r) under the best matching of columns.
func matchedCoefficientCosine(_ found: Matrix, _ planted: Matrix) -> Double {
    let r = planted.cols
    let sims = (0..<r).map { i in (0..<found.cols).map { j in cosine(planted.column(i), found.column(j)) } }
    return permutations(found.cols).map { p in (0..<r).map { sims[$0][p[$0]] }.min() ?? 0 }.max() ?? 0
}

/// Planted non-negative data: W (n×r) with one dominant component per example plus small mixing, H (r×m) with
/// disjoint random supports. Returns (W, H, A = W H as sparse rows).
func plantedNMF(n: Int, m: Int, r: Int, seed: UInt64) -> (w: Matrix, h: Matrix, a: SparseRows) {
    var rng = SeededRandom(seed: seed)
    var w = Matrix(rows: n, cols: r)
    for i in 0..<n {
        for j in 0..<r { w[i, j] = rng.uniform() < 0.3 ? 0.3 * rng.uniform() : 0 }
        w[i, i % r] = 0.5 + rng.uniform()
    }
    var h = Matrix(rows: r, cols: m)
    for p in 0..<m where rng.uniform() < 0.6 { h[p % r, p] = 0.2 + rng.uniform() }
    return (w, h, SparseRows(dense: Matrix.product(w, h)))
}

/// ‖A − W H‖_F² directly, in Double.
func directLoss(_ a: SparseRows, _ w: Matrix, _ h: Matrix) -> Double {
    let d = a.dense(), wh = Matrix.product(w, h)
    var s = 0.0
    for i in 0..<d.count { let e = Double(d.storage[i]) - Double(wh.storage[i]); s += e * e }
    return s
}
