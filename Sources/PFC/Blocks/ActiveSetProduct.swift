// ActiveSetProduct: the sparse products of the active-set FISTA (issue 14; research/pfc.md §1.2)
// for one batch chunk: S·A and Sᵀ·Z for a chunk's sparse rows S (B_c × K, listed per row).
import Linalg
#if canImport(Glibc)
import Glibc
#endif

/// One chunk's plan and scratch for a sparse operand S (B_c × K, each row a list of columns and
/// values). Columns that many rows of the chunk list go to one BLAS product over a compacted panel
/// (S's common columns × the matching rows of A); the remaining entries go to row gathers
/// (`SparseRowKernels`). A column is common when its count c_j makes ρ·c_j > B_c, ρ being how many
/// times more a gathered multiply-add costs than one inside BLAS (`gatherCost`): the split costs
/// Σ_j min(B_c, ρ·c_j)·K against B_c·K·K for the dense product.
///
/// Single-threaded: each chunk of `FISTAInference` owns one.
final class ActiveSetProduct {
    let rows: Int, k: Int
    private let colCount: UnsafeMutablePointer<Int32>
    private let position: UnsafeMutablePointer<Int32>
    private let common: UnsafeMutablePointer<Int32>
    private var commonCount = 0
    private let compact: UnsafeMutablePointer<Float>  // B_c × m: S on the common columns
    private let panel: UnsafeMutablePointer<Float>    // m × K: rows of A on the common columns (or Sᵀ Z)
    /// The common columns whose rows of `panelSource` the panel holds now (`multiply` reuses them when
    /// the next iteration's common columns are the same, as they mostly are once the active set settles).
    private let panelColumns: UnsafeMutablePointer<Int32>
    private var panelCount = -1
    private var panelSource: UnsafePointer<Float>?

    /// Cost of one gathered multiply-add over one inside the dense BLAS product, measured by
    /// `pfc-bench --calibrate` (Benchmarks/pfc/results-activeset-2026-12-01*.md). With the AVX2 + FMA
    /// kernels, at K = 300 a gather or a (transposed) scatter over 10–15 % of the entries takes
    /// 0.22–0.38× the dense product's time, so ρ ≈ 2.5; with the portable (SSE) kernels, and for a
    /// Gram matrix too large for the cache (K = 2000: 16 MB) the row gathers run at memory speed (ρ ≈ 5), so
    /// there `multiply` streams A by columns instead (`streamsGram`), again ρ ≈ 2.5.
    /// `PFC_GATHER_COST` overrides it (benchmarks only).
    /// For a single row the dense product is a matrix-vector product, as bound by reading A as a
    /// gather is (no reuse for BLAS to exploit), so there ρ = 1: every listed entry is gathered and the
    /// split costs S's density (a one-example prediction; before, each iteration copied the active
    /// rows of A into the panel and ran a one-row sgemm on them).
    static func gatherCost(k: Int, rows: Int) -> Float {
        if let v = overrideCost { return v }
        if rows == 1 { return 1 }
        // K = 2000 (A 16 MB) with A streamed by columns (`streamsGram`): 0.22–0.33× the dense product
        // at 10–20 % active (`pfc-bench --calibrate`, 2026-12-01c), so ρ ≈ 2.5 there too.
        return SparseRowKernels.vectorLevel == .portable ? 5 : 2.5
    }

    private static let overrideCost: Float? = getenv("PFC_GATHER_COST").flatMap { Float(String(cString: $0)) }.flatMap { $0 > 0 ? $0 : nil }

    /// Planned split is used when it costs less than this share of the dense product (the planning,
    /// compaction and the elementwise work are not in the estimate).
    static let worthIt: Float = 0.8

    /// The factored dense product (Z W_xᵀ) W_x's time per multiply-add over the Gram product's (two
    /// thinner BLAS calls); `PFC_FACTORED_COST` overrides it (benchmarks only).
    static let factoredOverhead: Float = getenv("PFC_FACTORED_COST").flatMap { Float(String(cString: $0)) }.flatMap { $0 > 0 ? $0 : nil } ?? 1

    init(rows: Int, k: Int) {
        self.rows = rows
        self.k = k
        colCount = .allocate(capacity: k)
        position = .allocate(capacity: k)
        common = .allocate(capacity: k)
        compact = .allocate(capacity: rows * k + 1) // + a sink slot for `prepare`
        panel = .allocate(capacity: max(1, k * k))
        panelColumns = .allocate(capacity: max(1, k))
    }

    deinit {
        colCount.deallocate(); position.deallocate(); common.deallocate(); compact.deallocate(); panel.deallocate()
        panelColumns.deallocate()
    }

    /// Estimated cost of the split relative to the dense product (1 = as costly), from the lists.
    /// Fills the column counts used by `prepare`.
    func relativeCost(counts: UnsafePointer<Int32>, indices: UnsafePointer<Int32>) -> Float {
        colCount.initialize(repeating: 0, count: k)
        for r in 0..<rows {
            let ri = indices + r * k
            for m in 0..<Int(counts[r]) { colCount[Int(ri[m])] &+= 1 }
        }
        let bc = Float(rows), rho = Self.gatherCost(k: k, rows: rows)
        var cost: Float = 0
        for j in 0..<k { cost += Swift.min(bc, rho * Float(colCount[j])) }
        return cost / (bc * Float(k))
    }

    /// Splits the lists (after `relativeCost`): common columns into the compact panel, the other
    /// entries stay in the lists (filtered in place; `counts` updated).
    func prepare(counts: UnsafeMutablePointer<Int32>, indices: UnsafeMutablePointer<Int32>, values: UnsafeMutablePointer<Float>) {
        let bc = Float(rows), rho = Self.gatherCost(k: k, rows: rows)
        commonCount = 0
        for j in 0..<k {
            if rho * Float(colCount[j]) > bc {
                position[j] = Int32(truncatingIfNeeded: commonCount)
                common[commonCount] = Int32(truncatingIfNeeded: j)
                commonCount += 1
            } else {
                position[j] = -1
            }
        }
        let m = commonCount
        if m == 0 { return }
        compact.initialize(repeating: 0, count: rows * m)
        let sink = compact + rows * k
        for r in 0..<rows {
            let ri = indices + r * k, rv = values + r * k, out = compact + r * m
            var kept = 0
            // Branch-free (common and rare columns interleave unpredictably): a common entry goes to
            // its panel slot, a rare one to the sink; every entry is copied down, kept only if rare.
            for e in 0..<Int(counts[r]) {
                let j = ri[e], v = rv[e], p = Int(position[Int(j)])
                (p >= 0 ? out + p : sink).pointee = v
                ri[kept] = j; rv[kept] = v
                kept &+= p < 0 ? 1 : 0
            }
            counts[r] = Int32(truncatingIfNeeded: kept)
        }
    }

    /// `out += S·A` (A: K×K with leading dimension K), after `prepare`.
    func multiply(a: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
                  counts: UnsafePointer<Int32>, indices: UnsafePointer<Int32>, values: UnsafePointer<Float>) {
        let m = commonCount
        if m > 0 {
            let same = panelSource == UnsafePointer(a) && panelCount == m
                && memcmp(panelColumns, common, m * MemoryLayout<Int32>.stride) == 0
            if !same {
                for p in 0..<m { (panel + p * k).update(from: a + Int(common[p]) * k, count: k) }
                panelColumns.update(from: common, count: m)
                panelCount = m
                panelSource = UnsafePointer(a)
            }
            BLAS.gemm(.none, .none, m: rows, n: k, k: m, alpha: 1, a: compact, lda: m, b: panel, ldb: k, beta: 1, c: out, ldc: k)
        }
        if Self.streamsGram(k: k) {
            SparseRowKernels.gatherByColumns(rows: rows, capacity: k, k: k, counts: counts, indices: indices, values: values,
                                             a: a, lda: k, n: k, out: out, ldo: k)
        } else {
            SparseRowKernels.gatherAccumulate(rows: rows, capacity: k, counts: counts, indices: indices, values: values,
                                              a: a, lda: k, n: k, out: out, ldo: k, panelRows: k)
        }
    }

    /// Whether `multiply` streams A row by row into the output rows (`gatherByColumns`) instead of
    /// gathering A's rows per output row: for a Gram matrix beyond the 4 MB the row gathers keep in
    /// cache (K = 2000: 16 MB, where the calibration's transposed-scatter column, the same access
    /// pattern, costs 0.2–0.3× the gathers). `PFC_STREAM_GRAM=0/1` overrides it (benchmarks only).
    static func streamsGram(k: Int) -> Bool {
        if let v = streamOverride { return v }
        return k * k * 4 > 4 << 20
    }

    private static let streamOverride: Bool? = getenv("PFC_STREAM_GRAM").map { String(cString: $0) != "0" }

    /// `c += Sᵀ·Z` (Z: B_c × K, C: K × K), after `prepare` (reuses the panel: call after `multiply`).
    func accumulateTransposed(z: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>,
                              counts: UnsafePointer<Int32>, indices: UnsafePointer<Int32>, values: UnsafePointer<Float>) {
        let m = commonCount
        if m > 0 {
            panelCount = -1  // the panel now holds Sᵀ Z, not rows of A
            BLAS.gemm(.transposed, .none, m: m, n: k, k: rows, alpha: 1, a: compact, lda: m, b: z, ldb: k, beta: 0, c: panel, ldc: k)
            for p in 0..<m {
                let dst = c + Int(common[p]) * k, src = panel + p * k
                for j in 0..<k { dst[j] += src[j] }
            }
        }
        SparseRowKernels.scatterTransposed(rows: rows, capacity: k, k: k, counts: counts, indices: indices, values: values,
                                           z: z, ldz: k, n: k, c: c, ldc: k)
    }
}
