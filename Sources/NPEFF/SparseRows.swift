// SparseRows: a CSR matrix of Float with the two sparse × dense products the decompositions need.
import Linalg

/// A sparse matrix in compressed-sparse-row form: row `i` holds `columns[rowOffsets[i]..<rowOffsets[i+1]]`
/// (ascending) with the matching `values`.
public struct SparseRows: Sendable, Equatable {
    /// Number of rows.
    public var rows: Int
    /// Number of columns.
    public var cols: Int
    /// `rows + 1` offsets into `columns`/`values`, starting at 0.
    public var rowOffsets: [Int]
    /// Column index of every stored entry.
    public var columns: [Int32]
    /// Value of every stored entry.
    public var values: [Float]

    /// A CSR matrix from its arrays; columns within a row must be ascending.
    public init(rows: Int, cols: Int, rowOffsets: [Int], columns: [Int32], values: [Float]) {
        precondition(rowOffsets.count == rows + 1 && rowOffsets.first == 0 && rowOffsets.last == columns.count,
                     "row offsets do not describe \(rows) rows")
        precondition(columns.count == values.count, "one value per column index")
        self.rows = rows
        self.cols = cols
        self.rowOffsets = rowOffsets
        self.columns = columns
        self.values = values
    }

    /// The sparse form of a dense matrix (exact zeros are dropped).
    public init(dense m: Matrix) {
        var offsets = [0], cols = [Int32](), vals = [Float]()
        for i in 0..<m.rows {
            for j in 0..<m.cols where m[i, j] != 0 { cols.append(Int32(j)); vals.append(m[i, j]) }
            offsets.append(cols.count)
        }
        self.init(rows: m.rows, cols: m.cols, rowOffsets: offsets, columns: cols, values: vals)
    }

    /// Number of stored entries.
    public var nonzeros: Int { values.count }

    /// The entries of row `i`.
    public func row(_ i: Int) -> (columns: ArraySlice<Int32>, values: ArraySlice<Float>) {
        let r = rowOffsets[i]..<rowOffsets[i + 1]
        return (columns[r], values[r])
    }

    /// The dense matrix (tests and small data only).
    public func dense() -> Matrix {
        var m = Matrix(rows: rows, cols: cols)
        for i in 0..<rows { for e in rowOffsets[i]..<rowOffsets[i + 1] { m[i, Int(columns[e])] = values[e] } }
        return m
    }

    /// The transpose, also in CSR form (columns ascending), by a counting sort.
    public func transposed() -> SparseRows {
        var counts = [Int](repeating: 0, count: cols + 1)
        for c in columns { counts[Int(c) + 1] += 1 }
        for j in 0..<cols { counts[j + 1] += counts[j] }
        var next = counts
        var tCols = [Int32](repeating: 0, count: nonzeros), tVals = [Float](repeating: 0, count: nonzeros)
        for i in 0..<rows {
            for e in rowOffsets[i]..<rowOffsets[i + 1] {
                let j = Int(columns[e])
                tCols[next[j]] = Int32(i)
                tVals[next[j]] = values[e]
                next[j] += 1
            }
        }
        return SparseRows(rows: cols, cols: rows, rowOffsets: counts, columns: tCols, values: tVals)
    }

    /// Σ of squared values (‖A‖_F²) in Double.
    public var squaredNorm: Double { values.reduce(0.0) { $0 + Double($1) * Double($1) } }

    /// The number of stored entries in every column.
    public func columnCounts() -> [Int] {
        var counts = [Int](repeating: 0, count: cols)
        for c in columns { counts[Int(c)] += 1 }
        return counts
    }

    /// `self · B` for a dense `B` (cols × r, row-major): a dense rows × r matrix. Rows split over `ComputeThreads`.
    public func times(_ b: Matrix) -> Matrix {
        precondition(b.rows == cols, "sparse \(rows)×\(cols) times dense \(b.rows)×\(b.cols)")
        let r = b.cols
        var out = Matrix(rows: rows, cols: r)
        if r == 0 || rows == 0 { return out }
        let chunks = balancedChunks()
        rowOffsets.withUnsafeBufferPointer { op in
        columns.withUnsafeBufferPointer { cp in
        values.withUnsafeBufferPointer { vp in
        b.storage.withUnsafeBufferPointer { bp in
        out.storage.withUnsafeMutableBufferPointer { outp in
            let (o, c, v, bb, ob) = (op.baseAddress!, cp.baseAddress!, vp.baseAddress!, bp.baseAddress!, outp.baseAddress!)
            ComputeThreads.run(chunks.count) { part in
                for i in chunks[part] { sparseRowTimesDense(o[i]..<o[i + 1], c, v, bb, r, ob + i * r) }
            }
        }
        }
        }
        }
        }
        return out
    }

    /// Contiguous row ranges with about equal numbers of stored entries (column counts of a transposed PEF matrix are
    /// very uneven), four per compute thread so a busy core does not hold the others up; one range when small.
    func balancedChunks() -> [Range<Int>] {
        let parts = max(1, min(4 * ComputeThreads.count, rows / 64, nonzeros / 4096))
        if parts == 1 { return [0..<rows] }
        var bounds = [0]
        var row = 0
        for p in 1..<parts {
            let target = nonzeros * p / parts
            while row < rows && rowOffsets[row] < target { row += 1 }
            if row > bounds.last! { bounds.append(row) }
        }
        if rows > bounds.last! { bounds.append(rows) }
        return zip(bounds, bounds.dropFirst()).map { $0..<$1 }
    }

    /// For each group of rows `groups[g]..<groups[g+1]`: Σ_rows (row · B[:, j])² over j, i.e. `N[g, j]`
    /// of npeff.md §3 when rows are an example's (class) factor vectors and B = Gᵀ. Returns a groups × r matrix.
    public func groupedSquaredProducts(_ b: Matrix, groups: [Int]) -> Matrix {
        let product = times(b)
        let r = b.cols, n = groups.count - 1
        var out = Matrix(rows: n, cols: r)
        for g in 0..<n {
            for row in groups[g]..<groups[g + 1] {
                for j in 0..<r { let p = product.storage[row * r + j]; out.storage[g * r + j] += p * p }
            }
        }
        return out
    }
}

/// dst[0..<r] = Σ_{e ∈ entries} values[e] · B[columns[e], 0..<r] (B row-major with r columns). The row's products are
/// accumulated in SIMD registers, 32 columns at a time (then 16, 8 and scalars), and stored once: with a running sum in
/// memory the compiler must reload `dst` after every entry, as it cannot prove `dst` and `B` apart.
@inline(__always)
func sparseRowTimesDense(_ entries: Range<Int>, _ columns: UnsafePointer<Int32>, _ values: UnsafePointer<Float>,
                         _ b: UnsafePointer<Float>, _ r: Int, _ dst: UnsafeMutablePointer<Float>) {
    typealias V = SIMD16<Float>
    var j0 = 0
    while j0 + 32 <= r {
        var acc0 = V(repeating: 0), acc1 = V(repeating: 0)
        for e in entries {
            let src = UnsafeRawPointer(b + Int(columns[e]) * r + j0)
            let a = values[e]
            acc0 += a * src.loadUnaligned(as: V.self)
            acc1 += a * src.loadUnaligned(fromByteOffset: 64, as: V.self)
        }
        UnsafeMutableRawPointer(dst + j0).storeBytes(of: acc0, as: V.self)
        UnsafeMutableRawPointer(dst + j0).storeBytes(of: acc1, toByteOffset: 64, as: V.self)
        j0 += 32
    }
    if j0 + 16 <= r {
        var acc = V(repeating: 0)
        for e in entries { acc += values[e] * UnsafeRawPointer(b + Int(columns[e]) * r + j0).loadUnaligned(as: V.self) }
        UnsafeMutableRawPointer(dst + j0).storeBytes(of: acc, as: V.self)
        j0 += 16
    }
    if j0 + 8 <= r {
        var acc = SIMD8<Float>(repeating: 0)
        for e in entries { acc += values[e] * UnsafeRawPointer(b + Int(columns[e]) * r + j0).loadUnaligned(as: SIMD8<Float>.self) }
        UnsafeMutableRawPointer(dst + j0).storeBytes(of: acc, as: SIMD8<Float>.self)
        j0 += 8
    }
    if j0 < r {
        var acc = SIMD8<Float>(repeating: 0) // the remaining < 8 columns, lane l = column j0 + l
        let rest = r - j0
        for e in entries {
            let src = b + Int(columns[e]) * r + j0, a = values[e]
            for l in 0..<rest { acc[l] += a * src[l] }
        }
        for l in 0..<rest { dst[j0 + l] = acc[l] }
    }
}
