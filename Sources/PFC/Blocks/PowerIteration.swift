// PowerIteration: the largest eigenvalue of a symmetric PSD K×K matrix, for the FISTA step size.
import Linalg

/// Largest eigenvalue of the symmetric positive semi-definite matrix `a` (K×K, row-major) by the
/// power method: research/pfc.md §1.2 (40 iterations, tolerance 1e-5). The start vector is a fixed
/// pseudo-random vector, so inference is deterministic. No gradient flows through the result.
public enum PowerIteration {
    /// Returns λmax(a); `a` must be K×K.
    public static func largestEigenvalue(of a: UnsafePointer<Float>, k: Int, iterations: Int = 40, tolerance: Float = 1e-5) -> Float {
        var rng = SeededRandom(seed: 0x5EED_F157A)
        var v = (0..<k).map { _ in 0.5 + rng.uniform() }
        var w = [Float](repeating: 0, count: k)
        normalize(&v)
        var lambda: Float = 0
        for _ in 0..<iterations {
            v.withUnsafeBufferPointer { pv in
                w.withUnsafeMutableBufferPointer { pw in
                    BLAS.gemv(.none, m: k, n: k, alpha: 1, a: a, lda: k, x: pv.baseAddress!, beta: 0, y: pw.baseAddress!)
                }
            }
            // Rayleigh quotient vᵀAv with ‖v‖ = 1.
            var next: Float = 0
            for i in 0..<k { next += v[i] * w[i] }
            let norm = normalize(&w)
            if norm == 0 { return 0 }
            swap(&v, &w)
            let converged = abs(next - lambda) <= tolerance * abs(next)
            lambda = next
            if converged { break }
        }
        return lambda
    }

    @discardableResult
    private static func normalize(_ v: inout [Float]) -> Float {
        var s: Float = 0
        for x in v { s += x * x }
        let n = s.squareRoot()
        if n > 0 { for i in v.indices { v[i] /= n } }
        return n
    }
}
