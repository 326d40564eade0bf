// SparseRowKernels: products of a row-sparse matrix with a dense one, for the active-set FISTA
// (research/pfc.md §1.2; issue 14). A sparse row is a list of (column index, value) pairs; its
// product with a dense matrix A gathers the listed rows of A (contiguous, so the inner loops are
// SIMD loads and multiply-adds over a row), and the transposed product scatters into listed rows.

public enum SparseRowKernels {
    /// Columns per pass in `scatterRow`.
    public static let tile = 256

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
        let width = panelWidth(panelRows: panelRows, n: n)
        var c0 = 0
        while c0 < n {
            let w = min(width, n - c0)
            for r in 0..<rows {
                let cnt = Int(counts[r])
                if cnt == 0 { continue }
                gatherRow(count: cnt, indices: indices + r * capacity, values: values + r * capacity,
                          a: a + c0, lda: lda, n: w, y: out + r * ldo + c0)
            }
            c0 += w
        }
    }

    /// `y[0..<n] += Σ_m values[m] · a[indices[m]·lda ..< +n]`, four rows of A per pass over y.
    @inlinable
    public static func gatherRow(count: Int, indices: UnsafePointer<Int32>, values: UnsafePointer<Float>,
                                 a: UnsafePointer<Float>, lda: Int, n: Int, y: UnsafeMutablePointer<Float>) {
        let yr = UnsafeMutableRawPointer(y)
        var m = 0
        while m + 4 <= count {
            let r0 = UnsafeRawPointer(a + Int(indices[m]) * lda), r1 = UnsafeRawPointer(a + Int(indices[m + 1]) * lda)
            let r2 = UnsafeRawPointer(a + Int(indices[m + 2]) * lda), r3 = UnsafeRawPointer(a + Int(indices[m + 3]) * lda)
            let v0 = SIMD8<Float>(repeating: values[m]), v1 = SIMD8<Float>(repeating: values[m + 1])
            let v2 = SIMD8<Float>(repeating: values[m + 2]), v3 = SIMD8<Float>(repeating: values[m + 3])
            var j = 0
            while j + 8 <= n {
                let o = j * 4
                var acc = yr.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self)
                acc += v0 * r0.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self)
                acc += v1 * r1.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self)
                acc += v2 * r2.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self)
                acc += v3 * r3.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self)
                yr.storeBytes(of: acc, toByteOffset: o, as: SIMD8<Float>.self)
                j += 8
            }
            let p0 = a + Int(indices[m]) * lda, p1 = a + Int(indices[m + 1]) * lda
            let p2 = a + Int(indices[m + 2]) * lda, p3 = a + Int(indices[m + 3]) * lda
            let s0 = values[m], s1 = values[m + 1], s2 = values[m + 2], s3 = values[m + 3]
            while j < n {
                y[j] += s0 * p0[j] + s1 * p1[j] + s2 * p2[j] + s3 * p3[j]
                j += 1
            }
            m += 4
        }
        while m < count {
            let p = a + Int(indices[m]) * lda
            let r = UnsafeRawPointer(p)
            let s = values[m], v = SIMD8<Float>(repeating: s)
            var j = 0
            while j + 8 <= n {
                let o = j * 4
                let acc = yr.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self) + v * r.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self)
                yr.storeBytes(of: acc, toByteOffset: o, as: SIMD8<Float>.self)
                j += 8
            }
            while j < n { y[j] += s * p[j]; j += 1 }
            m += 1
        }
    }

    /// `c[indices[m], 0..<n] += values[m] · x[0..<n]` for every entry m of one sparse row (the
    /// transposed product: a sparse column times a dense row, scattered into listed rows of C).
    @inlinable
    public static func scatterRow(count: Int, indices: UnsafePointer<Int32>, values: UnsafePointer<Float>,
                                  x: UnsafePointer<Float>, n: Int, c: UnsafeMutablePointer<Float>, ldc: Int) {
        let xr = UnsafeRawPointer(x)
        var j0 = 0
        // Column panels keep the x segment in registers/L1 while the listed rows of C stream by.
        while j0 < n {
            let w = min(tile, n - j0)
            for m in 0..<count {
                let p = c + Int(indices[m]) * ldc + j0
                let cr = UnsafeMutableRawPointer(p)
                let s = values[m], v = SIMD8<Float>(repeating: s)
                var j = 0
                while j + 8 <= w {
                    let o = j * 4
                    let acc = cr.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self)
                        + v * xr.loadUnaligned(fromByteOffset: (j0 + j) * 4, as: SIMD8<Float>.self)
                    cr.storeBytes(of: acc, toByteOffset: o, as: SIMD8<Float>.self)
                    j += 8
                }
                while j < w { p[j] += s * x[j0 + j]; j += 1 }
            }
            j0 += w
        }
    }
}
