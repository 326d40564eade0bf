// SparseRowKernels: products of a row-sparse matrix with a dense one, for the active-set FISTA
// (research/pfc.md §1.2; issue 14). A sparse row is a list of (column index, value) pairs; its
// product with a dense matrix A gathers the listed rows of A (contiguous, so the inner loops are
// SIMD loads and multiply-adds over a row), and the transposed product scatters into listed rows.
// The loops are C (Sources/CKernels) so they can use AVX2 and FMA, or AVX-512, where the CPU has them.
import CKernels

public enum SparseRowKernels {
    /// Columns per pass over the rows in `gatherAccumulate`: a panel of A (`panelRows` × width
    /// floats) stays in cache while every sparse row reads from it: all of A when it fits in the
    /// per-core L2 (512 KiB), else 128 columns (a panel in L3; narrower ones cost more in loop overhead
    /// than they save, measured at K = 2000).
    @inlinable
    public static func panelWidth(panelRows: Int, n: Int) -> Int {
        panelRows * n * 4 <= 512 * 1024 ? n : Swift.min(n, 128)
    }

    /// `out[r, 0..<n] += Σ_m values[r·capacity + m] · a[indices[r·capacity + m], 0..<n]` for r in
    /// 0..<rows, m in 0..<counts[r]: a batch of sparse rows (fixed-capacity slots) times a dense
    /// matrix. `a`: row-major with leading dimension `lda`; `out`: row-major with leading dimension `ldo`;
    /// `panelRows`: how many rows of A the lists reach (sets the cache panel's width).
    public static func gatherAccumulate(rows: Int, capacity: Int, counts: UnsafePointer<Int32>, indices: UnsafePointer<Int32>,
                                        values: UnsafePointer<Float>, a: UnsafePointer<Float>, lda: Int, n: Int,
                                        out: UnsafeMutablePointer<Float>, ldo: Int, panelRows: Int) {
        pfc_gather_accumulate(rows, capacity, counts, indices, values, a, lda, n, out, ldo, panelWidth(panelRows: panelRows, n: n))
    }

    /// `c[indices[m], 0..<n] += values[m] · x[0..<n]` for every entry m of one sparse row (the
    /// transposed product: a sparse column times a dense row, scattered into listed rows of C).
    public static func scatterRow(count: Int, indices: UnsafePointer<Int32>, values: UnsafePointer<Float>,
                                  x: UnsafePointer<Float>, n: Int, c: UnsafeMutablePointer<Float>, ldc: Int) {
        pfc_scatter_row(count, indices, values, x, n, c, ldc)
    }

    /// `c[k, 0..<n] += Σ_r S[r, k] · z[r, 0..<n]` (C += Sᵀ·Z, C: K × n, Z: rows × n) for S given as
    /// `rows` sparse rows in fixed-capacity slots (as in `gatherAccumulate`) over K = `k` columns.
    /// The lists are transposed first, so each listed row of C is read and written once while the
    /// rows of Z (a chunk: small, in cache) are gathered into it; cheaper than a `scatterRow` per row
    /// of S, which streams the listed rows of C once per row. Falls back to `scatterRow` when the
    /// transposed lists cannot be allocated.
    public static func scatterTransposed(rows: Int, capacity: Int, k: Int, counts: UnsafePointer<Int32>, indices: UnsafePointer<Int32>,
                                         values: UnsafePointer<Float>, z: UnsafePointer<Float>, ldz: Int, n: Int,
                                         c: UnsafeMutablePointer<Float>, ldc: Int) {
        if pfc_scatter_transposed(rows, capacity, k, counts, indices, values, z, ldz, n, c, ldc) == 0 { return }
        for r in 0..<rows {
            scatterRow(count: Int(counts[r]), indices: indices + r * capacity, values: values + r * capacity, x: z + r * ldz, n: n, c: c, ldc: ldc)
        }
    }

    /// The kernels' instruction set: `.avx512` where the CPU has AVX-512F (the gathers and scatters;
    /// the FISTA row passes stay AVX2), `.avx2FMA` where it has AVX2 and FMA (x86-64), else `.portable`
    /// (C compiled for the baseline). Chosen once at run time; settable for tests and benchmarks.
    public enum VectorLevel: Int32, Sendable, CaseIterable { case portable = 0, avx2FMA = 1, avx512 = 2 }

    /// `gatherAccumulate`'s product (every row of A the lists reach is `k` rows deep), computed by
    /// streaming each listed row of A once into the output rows that list it; for an A far larger
    /// than the cache. Falls back to `gatherAccumulate` when the transposed lists cannot be allocated.
    public static func gatherByColumns(rows: Int, capacity: Int, k: Int, counts: UnsafePointer<Int32>, indices: UnsafePointer<Int32>,
                                       values: UnsafePointer<Float>, a: UnsafePointer<Float>, lda: Int, n: Int,
                                       out: UnsafeMutablePointer<Float>, ldo: Int) {
        if pfc_gather_by_columns(rows, capacity, k, counts, indices, values, a, lda, n, out, ldo) == 0 { return }
        gatherAccumulate(rows: rows, capacity: capacity, counts: counts, indices: indices, values: values, a: a, lda: lda, n: n,
                         out: out, ldo: ldo, panelRows: k)
    }

    /// The instruction set the kernels run with.
    public static var vectorLevel: VectorLevel { VectorLevel(rawValue: pfc_kernels_vector_level()) ?? .portable }

    /// Runs the kernels at `level`, or at the best level below it that the CPU has. Process-wide.
    public static func setVectorLevel(_ level: VectorLevel) { pfc_kernels_set_vector_level(level.rawValue) }

    /// The best level this CPU runs.
    public static var bestVectorLevel: VectorLevel { VectorLevel(rawValue: pfc_kernels_best_vector_level()) ?? .portable }

    /// Every level this CPU runs, lowest first (for tests and benchmarks).
    public static var availableVectorLevels: [VectorLevel] {
        VectorLevel.allCases.filter { $0.rawValue <= bestVectorLevel.rawValue }
    }
}
