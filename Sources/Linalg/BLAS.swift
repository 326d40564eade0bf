// BLAS: single-precision products through OpenBLAS's CBLAS interface, and thread control.
internal import CBLAS

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
