// FISTARowKernels: the element-wise row passes of the FISTA iteration in C (Sources/CKernels/
// FISTARows.c; research/pfc.md §1.2, issue 14): one fused pass per row and step, AVX2 where the
// CPU has it, bit for bit the scalar loops they replace (no FMA contraction), so the dense and the
// active-set engines still compute the same numbers.
import CKernels

public enum FISTARowKernels {
    /// `hc[j] = max(u[j], floor)`; returns the number of `u[j] ≥ floor` and the row's maximum of hc.
    @inline(__always)
    public static func clamp(k: Int, u: UnsafePointer<Float>, floor: Float, into hc: UnsafeMutablePointer<Float>) -> (alive: Int, max: Float) {
        var m: Float = 0
        let alive = pfc_fista_clamp_row(k, u, floor, hc, &m)
        return (alive, m)
    }

    /// `h = hc[j]·s` (stored in hc), `zNext[j] = h + β(h − hp[j])`; with `indices` lists every j with
    /// `zNext[j] ≠ cst` (value `negEta·(zNext[j] − cst)`, k slots) and returns how many (0 without).
    @inline(__always)
    public static func momentum(k: Int, hc: UnsafeMutablePointer<Float>, hp: UnsafePointer<Float>, scale s: Float, beta: Float,
                                constant cst: Float, negEta: Float, zNext: UnsafeMutablePointer<Float>,
                                indices: UnsafeMutablePointer<Int32>?, values: UnsafeMutablePointer<Float>?) -> Int {
        pfc_fista_momentum_row(k, hc, hp, s, beta, cst, negEta, zNext, indices, values)
    }

    /// Backward adjoint step: `H̄ = c1·zb1 + c2·zb2 (+ g)`, `Ū = [ub ≥ floor]·H̄·s` into ub and zb2,
    /// `bb += Ū`; with `indices` lists the mask (value `negEta·Ū`) and returns its size (0 without).
    @inline(__always)
    public static func adjoint(k: Int, zb1: UnsafePointer<Float>, zb2: UnsafeMutablePointer<Float>, g: UnsafePointer<Float>?,
                               c1: Float, c2: Float, ub: UnsafeMutablePointer<Float>, floor: Float, scale s: Float,
                               bb: UnsafeMutablePointer<Float>, negEta: Float,
                               indices: UnsafeMutablePointer<Int32>?, values: UnsafeMutablePointer<Float>?) -> Int {
        pfc_fista_adjoint_row(k, zb1, zb2, g, c1, c2, ub, floor, s, bb, negEta, indices, values)
    }

    /// `u[j] = (z[j] + e[j]) + cr·colSum[j]`.
    @inline(__always)
    public static func affine(k: Int, z: UnsafePointer<Float>, e: UnsafePointer<Float>, cr: Float, colSum: UnsafePointer<Float>,
                              into u: UnsafeMutablePointer<Float>) {
        pfc_fista_affine_row(k, z, e, cr, colSum, u)
    }
}
