import Testing
@testable import Linalg

/// The sparse-row kernels against a plain double-precision loop, at each vector level the CPU has
/// (portable C always; AVX2 + FMA and AVX-512 where present), on widths that exercise the 32- and 64-wide blocks, the
/// 8-wide remainder and the masked tail, and with panels narrower than the row.
@Suite(.serialized) struct SparseRowKernelTests {
    struct Case { let rows: Int, k: Int, n: Int, width: Int, density: Double }
    static let cases = [
        Case(rows: 5, k: 40, n: 300, width: 300, density: 0.2),   // 9 blocks of 32 + 12 (8 + masked 4)
        Case(rows: 3, k: 17, n: 7, width: 7, density: 0.6),       // only the masked tail
        Case(rows: 4, k: 64, n: 130, width: 128, density: 0.1),   // panels of 128 columns, then 2
        Case(rows: 2, k: 9, n: 33, width: 33, density: 1.0),      // every entry listed, odd counts
    ]

    func levels() -> [SparseRowKernels.VectorLevel] {
        SparseRowKernels.availableVectorLevels
    }

    @Test(arguments: cases.indices)
    func gatherMatchesLoop(_ i: Int) {
        let c = Self.cases[i]
        var rng = SeededRandom(seed: UInt64(11 + i))
        let a = (0..<(c.k * c.n)).map { _ in (rng.uniform() * 2 - 1) }
        var counts = [Int32](repeating: 0, count: c.rows), idx = [Int32](repeating: 0, count: c.rows * c.k)
        var vals = [Float](repeating: 0, count: c.rows * c.k)
        for r in 0..<c.rows {
            var m = 0
            for col in 0..<c.k where Double(rng.uniform()) < c.density {
                idx[r * c.k + m] = Int32(col); vals[r * c.k + m] = (rng.uniform() * 4 - 2); m += 1
            }
            counts[r] = Int32(m)
        }
        let start = (0..<(c.rows * c.n)).map { _ in (rng.uniform() * 2 - 1) }
        var want = [Double](repeating: 0, count: c.rows * c.n)
        for r in 0..<c.rows { for j in 0..<c.n {
            var s = Double(start[r * c.n + j])
            for m in 0..<Int(counts[r]) { s += Double(vals[r * c.k + m]) * Double(a[Int(idx[r * c.k + m]) * c.n + j]) }
            want[r * c.n + j] = s
        } }
        for level in levels() {
            SparseRowKernels.setVectorLevel(level)
            var out = start
            out.withUnsafeMutableBufferPointer { o in
                SparseRowKernels.gatherAccumulate(rows: c.rows, capacity: c.k, counts: counts, indices: idx, values: vals,
                                                  a: a, lda: c.n, n: c.n, out: o.baseAddress!, ldo: c.n,
                                                  panelRows: c.width == c.n ? 1 : 1 << 20)
            }
            let worst = zip(out, want).map { abs(Double($0) - $1) }.max() ?? 0
            #expect(worst < 1e-4, "gather at \(level): worst error \(worst)")
            // The column-streaming form of the same product (A's rows read once each).
            var byColumns = start
            byColumns.withUnsafeMutableBufferPointer { o in
                SparseRowKernels.gatherByColumns(rows: c.rows, capacity: c.k, k: c.k, counts: counts, indices: idx, values: vals,
                                                 a: a, lda: c.n, n: c.n, out: o.baseAddress!, ldo: c.n)
            }
            let worstColumns = zip(byColumns, want).map { abs(Double($0) - $1) }.max() ?? 0
            #expect(worstColumns < 1e-4, "gather by columns at \(level): worst error \(worstColumns)")
        }
        SparseRowKernels.setVectorLevel(.avx512)
    }

    @Test(arguments: cases.indices)
    func scatterMatchesLoop(_ i: Int) {
        let c = Self.cases[i]
        var rng = SeededRandom(seed: UInt64(29 + i))
        let x = (0..<c.n).map { _ in (rng.uniform() * 2 - 1) }
        var idx: [Int32] = [], vals: [Float] = []
        for col in 0..<c.k where Double(rng.uniform()) < c.density { idx.append(Int32(col)); vals.append((rng.uniform() * 4 - 2)) }
        let start = (0..<(c.k * c.n)).map { _ in (rng.uniform() * 2 - 1) }
        var want = start.map(Double.init)
        for (m, row) in idx.enumerated() { for j in 0..<c.n { want[Int(row) * c.n + j] += Double(vals[m]) * Double(x[j]) } }
        for level in levels() {
            SparseRowKernels.setVectorLevel(level)
            var out = start
            out.withUnsafeMutableBufferPointer { o in
                SparseRowKernels.scatterRow(count: idx.count, indices: idx, values: vals, x: x, n: c.n, c: o.baseAddress!, ldc: c.n)
            }
            let worst = zip(out, want).map { abs(Double($0) - $1) }.max() ?? 0
            #expect(worst < 1e-5, "scatter at \(level): worst error \(worst)")
            // Rows no entry lists are untouched.
            let listed = Set(idx.map(Int.init))
            for r in 0..<c.k where !listed.contains(r) {
                #expect(Array(out[(r * c.n)..<((r + 1) * c.n)]) == Array(start[(r * c.n)..<((r + 1) * c.n)]))
            }
        }
        SparseRowKernels.setVectorLevel(.avx512)
    }

    @Test(arguments: cases.indices)
    func transposedScatterMatchesLoop(_ i: Int) {
        let c = Self.cases[i]
        var rng = SeededRandom(seed: UInt64(47 + i))
        let z = (0..<(c.rows * c.n)).map { _ in (rng.uniform() * 2 - 1) }
        var counts = [Int32](repeating: 0, count: c.rows), idx = [Int32](repeating: 0, count: c.rows * c.k)
        var vals = [Float](repeating: 0, count: c.rows * c.k)
        for r in 0..<c.rows {
            var m = 0
            for col in 0..<c.k where Double(rng.uniform()) < c.density {
                idx[r * c.k + m] = Int32(col); vals[r * c.k + m] = (rng.uniform() * 4 - 2); m += 1
            }
            counts[r] = Int32(m)
        }
        let start = (0..<(c.k * c.n)).map { _ in (rng.uniform() * 2 - 1) }
        var want = start.map(Double.init)
        for r in 0..<c.rows { for m in 0..<Int(counts[r]) {
            let row = Int(idx[r * c.k + m])
            for j in 0..<c.n { want[row * c.n + j] += Double(vals[r * c.k + m]) * Double(z[r * c.n + j]) }
        } }
        for level in levels() {
            SparseRowKernels.setVectorLevel(level)
            var out = start
            out.withUnsafeMutableBufferPointer { o in
                SparseRowKernels.scatterTransposed(rows: c.rows, capacity: c.k, k: c.k, counts: counts, indices: idx, values: vals,
                                                   z: z, ldz: c.n, n: c.n, c: o.baseAddress!, ldc: c.n)
            }
            let worst = zip(out, want).map { abs(Double($0) - $1) }.max() ?? 0
            #expect(worst < 1e-4, "transposed scatter at \(level): worst error \(worst)")
        }
        SparseRowKernels.setVectorLevel(.avx512)
    }
}
