// BLAS: single-precision products through OpenBLAS's CBLAS interface, and thread control.
internal import CBLAS
import Foundation

/// Whether an operand is used as stored or transposed.
public enum Transpose: Sendable {
    case none, transposed
    var cblas: CBLAS_TRANSPOSE { self == .none ? CblasNoTrans : CblasTrans }
}

/// Thin wrappers over OpenBLAS. All matrices are row-major.
public enum BLAS {
    /// `C ← α·op(A)·op(B) + β·C`, with `op(A)`: m×k, `op(B)`: k×n, `C`: m×n, all row-major.
    @inlinable
    public static func gemm(
        _ transA: Transpose, _ transB: Transpose, m: Int, n: Int, k: Int,
        alpha: Float, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        sgemmRaw(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
    }

    @usableFromInline
    static func sgemmRaw(
        _ transA: Transpose, _ transB: Transpose, _ m: Int, _ n: Int, _ k: Int,
        _ alpha: Float, _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
        _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int
    ) {
        if m == 0 || n == 0 { return }
        // A product with one output row or column is a matrix-vector product: OpenBLAS 0.3.21's
        // sgemm would still pack both operands for it (a one-example prediction's every product).
        if (m == 1 || n == 1) && k > 0 && beta == 0 {
            // gemm never reads C when β = 0; sgemv scales y by β, which would keep a NaN of an unwritten buffer.
            for i in 0..<m { for j in 0..<n { c[i * ldc + j] = 0 } }
        }
        if m == 1 && k > 0 {
            // c (1×n) = α·a·op(B) + β·c: y = op(B)ᵀ·x, x = op(A)'s one row (stride 1, or lda when transposed).
            let incX = transA == .none ? 1 : lda
            if transB == .none {
                cblas_sgemv(CblasRowMajor, CblasTrans, Int32(k), Int32(n), alpha, b, Int32(ldb), a, Int32(incX), beta, c, 1)
            } else {
                cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(n), Int32(k), alpha, b, Int32(ldb), a, Int32(incX), beta, c, 1)
            }
            return
        }
        if n == 1 && k > 0 {
            // c (m×1, stride ldc) = α·op(A)·b + β·c, b = op(B)'s one column (stride ldb, or 1 when transposed).
            let incX = transB == .none ? ldb : 1
            if transA == .none {
                cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(m), Int32(k), alpha, a, Int32(lda), b, Int32(incX), beta, c, Int32(ldc))
            } else {
                cblas_sgemv(CblasRowMajor, CblasTrans, Int32(k), Int32(m), alpha, a, Int32(lda), b, Int32(incX), beta, c, Int32(ldc))
            }
            return
        }
        cblas_sgemm(CblasRowMajor, transA.cblas, transB.cblas, Int32(m), Int32(n), Int32(k),
                    alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// `y ← α·op(A)·x + β·y` with `A`: m×n row-major.
    public static func gemv(
        _ trans: Transpose, m: Int, n: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int,
        x: UnsafePointer<Float>, beta: Float, y: UnsafeMutablePointer<Float>
    ) {
        cblas_sgemv(CblasRowMajor, trans.cblas, Int32(m), Int32(n), alpha, a, Int32(lda), x, 1, beta, y, 1)
    }

    /// Sets how many threads OpenBLAS uses for one product (process-wide).
    public static func setThreads(_ n: Int) { openblas_set_num_threads(Int32(max(1, n))) }

    /// The number of threads OpenBLAS currently uses.
    public static var threads: Int { Int(openblas_get_num_threads()) }

    /// The kernel family OpenBLAS runs ("Haswell", "SkylakeX", "Cooperlake", …): its own pick for
    /// this CPU, or `OPENBLAS_CORETYPE` when that is set.
    public static var coreName: String { openblas_get_corename().map { String(cString: $0) } ?? "unknown" }

    /// A warning for the operator when OpenBLAS runs its AVX2 kernels on a CPU with AVX-512 (an
    /// `OPENBLAS_CORETYPE` pin, or an OpenBLAS older than the CPU), where dense products run at
    /// about half the speed the CPU allows (measured on a Zen 5 host: 75 against 180 GFLOP/s per
    /// core for sgemm at n 1000); nil otherwise.
    public static func coreAdvice(core: String, cpuHasAVX512: Bool, pinned: String?) -> String? {
        guard cpuHasAVX512, ["haswell", "zen"].contains(core.lowercased()) else { return nil }
        let why = pinned.map { "OPENBLAS_CORETYPE=\($0) is set" } ?? "this OpenBLAS does not know the CPU"
        return "OpenBLAS runs its \(core) (AVX2) kernels on a CPU with AVX-512 (\(why)): dense products run at about "
            + "half speed; unset OPENBLAS_CORETYPE or set it to SkylakeX"
    }

    /// Why OpenBLAS's kernel family cannot run on this CPU, or nil when it can. An
    /// `OPENBLAS_CORETYPE` pin is obeyed without a check, so pinning AVX-512 kernels (SkylakeX,
    /// Cooperlake, SapphireRapids) on a CPU without AVX-512, or AVX2 ones (Haswell, Zen) on a CPU
    /// without AVX2 and FMA, stops the process with an illegal instruction at its first dense
    /// product: in a server, in the middle of some tenant's job. `cpuLevel` is what the CPU runs
    /// (`SparseRowKernels.bestVectorLevel`).
    public static func coreProblem(core: String, cpuLevel: SparseRowKernels.VectorLevel, pinned: String?) -> String? {
        let needs: (level: SparseRowKernels.VectorLevel, name: String, fallback: String)
        switch core.lowercased() {
        case "skylakex", "cooperlake", "sapphirerapids": needs = (.avx512, "AVX-512", "Haswell")
        case "haswell", "zen": needs = (.avx2FMA, "AVX2 and FMA", "Sandybridge")
        default: return nil
        }
        guard cpuLevel.rawValue < needs.level.rawValue else { return nil }
        let why = pinned.map { "OPENBLAS_CORETYPE=\($0) selects OpenBLAS's" } ?? "OpenBLAS chose its"
        return "\(why) \(core) kernels, which need \(needs.name), but this CPU does not have \(needs.name): the first "
            + "dense product would stop the process (illegal instruction). Unset OPENBLAS_CORETYPE (OpenBLAS then picks the "
            + "kernels for this CPU) or set it to \(needs.fallback)"
    }

    /// `coreProblem` for this process.
    public static var currentCoreProblem: String? {
        coreProblem(core: coreName, cpuLevel: SparseRowKernels.bestVectorLevel,
                    pinned: ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"])
    }

    /// `coreAdvice` for this process.
    public static var currentCoreAdvice: String? {
        coreAdvice(core: coreName, cpuHasAVX512: SparseRowKernels.bestVectorLevel == .avx512,
                   pinned: ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"])
    }
}

extension Matrix {
    /// `op(A)·op(B)` as a new matrix.
    public static func product(_ a: Matrix, _ b: Matrix, transA: Transpose = .none, transB: Transpose = .none) -> Matrix {
        let (m, k) = transA == .none ? (a.rows, a.cols) : (a.cols, a.rows)
        let (k2, n) = transB == .none ? (b.rows, b.cols) : (b.cols, b.rows)
        precondition(k == k2, "inner dimensions differ: \(k) vs \(k2)")
        var c = Matrix(rows: m, cols: n)
        if k == 0 { return c }
        a.storage.withUnsafeBufferPointer { pa in
            b.storage.withUnsafeBufferPointer { pb in
                c.storage.withUnsafeMutableBufferPointer { pc in
                    BLAS.gemm(transA, transB, m: m, n: n, k: k, alpha: 1, a: pa.baseAddress!, lda: a.cols,
                              b: pb.baseAddress!, ldb: b.cols, beta: 0, c: pc.baseAddress!, ldc: n)
                }
            }
        }
        return c
    }

    /// `self ← α·op(A)·op(B) + β·self`.
    public mutating func accumulateProduct(_ a: Matrix, _ b: Matrix, transA: Transpose = .none, transB: Transpose = .none,
                                           alpha: Float = 1, beta: Float = 1) {
        let (m, k) = transA == .none ? (a.rows, a.cols) : (a.cols, a.rows)
        let n = transB == .none ? b.cols : b.rows
        precondition(m == rows && n == cols, "product shape \(m)×\(n) does not match \(rows)×\(cols)")
        if k == 0 { for i in storage.indices { storage[i] *= beta }; return }
        let ldc = cols
        a.storage.withUnsafeBufferPointer { pa in
            b.storage.withUnsafeBufferPointer { pb in
                storage.withUnsafeMutableBufferPointer { pc in
                    BLAS.gemm(transA, transB, m: m, n: n, k: k, alpha: alpha, a: pa.baseAddress!, lda: a.cols,
                              b: pb.baseAddress!, ldb: b.cols, beta: beta, c: pc.baseAddress!, ldc: ldc)
                }
            }
        }
    }
}
