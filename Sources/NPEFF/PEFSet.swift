// PEFSet: normalised, top-K sparsified per-example Fishers of a data set (D-PEFs and LRM-PEFs), and the
// pruning of parameter positions (npeff.md §1).
import Linalg
import PFC

/// How PEFs are computed.
public struct PEFOptions: Sendable, Equatable {
    /// Predictive distribution (softmax or Gaussian).
    public var likelihood: PredictiveLikelihood
    /// Classes with p_c below this are skipped (softmax only). npeff.md §1: ε = 3e-3 in the paper's ImageNet runs.
    public var classThreshold: Float
    /// Values kept per example (K, `--n_fisher_values_per_example`).
    public var topK: Int

    /// Options; `topK` is required.
    public init(likelihood: PredictiveLikelihood = .softmax, classThreshold: Float = 3e-3, topK: Int) {
        self.likelihood = likelihood
        self.classThreshold = classThreshold
        self.topK = topK
    }
}

/// Per-example facts kept with any PEF set.
public struct PEFExamples: Sendable, Equatable {
    /// ‖F_i‖_F of the dense PEF before normalisation (α_i of npeff.md §5).
    public var norms: [Float]
    /// True labels.
    public var labels: [Int]
    /// Predicted classes (argmax ŷ).
    public var predictions: [Int]
}

/// Diagonal PEFs: row i is f_i/‖f_i‖ (f_i = Σ_c p_c (∇log p_c)²) restricted to its top-K entries.
public struct DiagonalPEFs: Sendable {
    /// n × m' (m' = `keptColumns.count`).
    public var matrix: SparseRows
    /// m, the model's parameter count.
    public var parameterCount: Int
    /// Model parameter index of every kept column (`new_to_old_col_indices`).
    public var keptColumns: [Int]
    /// Norms, labels and predictions.
    public var examples: PEFExamples
    /// The dataset-level diagonal Fisher (1/n) Σ_i f_i (dense, unnormalised, length m): the `d` of the
    /// D-NPEFF perturbation (npeff.md §5, `DDsfComputer` expected-Fisher mode).
    public var datasetFisher: [Float]
}

/// Low-rank PEFs: the rows `exampleOffsets[i]..<exampleOffsets[i+1]` are example i's vectors
/// a_c/√‖F_i‖_F, sparsified jointly to K entries (npeff.md §1, "Top-K sparsification").
public struct LowRankPEFs: Sendable {
    /// (Σ_i r_i) × m'.
    public var matrix: SparseRows
    /// n + 1 offsets into the rows of `matrix`.
    public var exampleOffsets: [Int]
    /// The class of every row.
    public var rowClasses: [Int]
    /// m, the model's parameter count.
    public var parameterCount: Int
    /// Model parameter index of every kept column.
    public var keptColumns: [Int]
    /// Norms, labels and predictions.
    public var examples: PEFExamples

    /// Number of examples n.
    public var count: Int { exampleOffsets.count - 1 }
}

extension DiagonalPEFs {
    /// Number of examples n.
    public var count: Int { matrix.rows }
}

/// Builds PEF sets from a network and a data set.
public enum PEFComputer {
    /// Examples of `data` split over `ComputeThreads`; `body` runs per example and results keep data order.
    static func perExample<T: Sendable>(_ data: LabeledDataset, _ body: @escaping @Sendable (Matrix) -> T) -> [T] {
        let chunks = ComputeThreads.ranges(data.count, minimum: 1)
        let results = ResultSlots<[T]>(chunks.count)
        ComputeThreads.run(chunks.count) { part in
            results.set(part, chunks[part].map { i in body(data.batch([i]).x) })
        }
        return results.values.flatMap { $0 ?? [] }
    }

    /// One example's D-PEF row: top-K of f/(‖f‖ + 1e-9) (npeff.md §1, `pef_fisher_h5.h`), ‖f‖, the prediction and f.
    struct DiagonalRow: Sendable { var cols: [Int32], vals: [Float], norm: Float, pred: Int, f: [Float] }

    /// One example's LRM-PEF rows: its vectors a_c/√‖F‖_F sparsified jointly to K entries.
    struct LowRankRows: Sendable { var offsets: [Int], cols: [Int32], vals: [Float], classes: [Int], norm: Float, pred: Int }

    static func prediction(_ fac: ExampleFisherFactors) -> Int {
        fac.output.indices.max { fac.output[$0] < fac.output[$1] } ?? 0
    }

    static func diagonalRow(_ fac: ExampleFisherFactors, topK k: Int) -> DiagonalRow {
        let f = fac.diagonal
        var norm2 = 0.0
        for v in f { norm2 += Double(v) * Double(v) }
        let norm = Float(norm2.squareRoot())
        let keep = topKIndices(f, k)
        // D normalisation: values / (‖f‖ + 1e-9) (npeff.md §1, `pef_fisher_h5.h`).
        return DiagonalRow(cols: keep.map { Int32($0) }, vals: keep.map { f[$0] / (norm + 1e-9) }, norm: norm,
                           pred: prediction(fac), f: f)
    }

    static func lowRankRows(_ fac: ExampleFisherFactors, topK k: Int, parameters m: Int) -> LowRankRows {
        let norm = fac.frobeniusNorm
        // LRM normalisation: F is quadratic in A, so the vectors are divided by √‖F‖_F (npeff.md §1, `pef_normalization.h`).
        let scale = Float(1 / max(norm, 1e-12).squareRoot())
        let flat = fac.vectors.flatMap { $0 }
        let keep = topKIndices(flat.map(abs), k) // joint over the r × m entries
        var offsets = [0], cols = [Int32](), vals = [Float]()
        var e = 0
        for c in fac.vectors.indices {
            while e < keep.count && keep[e] < (c + 1) * m {
                cols.append(Int32(keep[e] - c * m)); vals.append(flat[keep[e]] * scale); e += 1
            }
            offsets.append(cols.count)
        }
        return LowRankRows(offsets: offsets, cols: cols, vals: vals, classes: fac.classes, norm: Float(norm), pred: prediction(fac))
    }

    static func assembleDiagonal(_ rows: [DiagonalRow], m: Int, labels: [Int]) -> DiagonalPEFs {
        var offsets = [0], cols = [Int32](), vals = [Float]()
        var mean = [Double](repeating: 0, count: m)
        for r in rows {
            cols += r.cols; vals += r.vals; offsets.append(cols.count)
            for i in 0..<m { mean[i] += Double(r.f[i]) }
        }
        let n = max(1, rows.count)
        return DiagonalPEFs(
            matrix: SparseRows(rows: rows.count, cols: m, rowOffsets: offsets, columns: cols, values: vals),
            parameterCount: m, keptColumns: Array(0..<m),
            examples: PEFExamples(norms: rows.map(\.norm), labels: labels, predictions: rows.map(\.pred)),
            datasetFisher: mean.map { Float($0 / Double(n)) })
    }

    static func assembleLowRank(_ perEx: [LowRankRows], m: Int, labels: [Int]) -> LowRankPEFs {
        var rowOffsets = [0], cols = [Int32](), vals = [Float](), classes = [Int](), exOffsets = [0]
        for r in perEx {
            for o in r.offsets.dropFirst() { rowOffsets.append(cols.count + o) }
            cols += r.cols; vals += r.vals; classes += r.classes
            exOffsets.append(classes.count)
        }
        return LowRankPEFs(
            matrix: SparseRows(rows: classes.count, cols: m, rowOffsets: rowOffsets, columns: cols, values: vals),
            exampleOffsets: exOffsets, rowClasses: classes, parameterCount: m, keptColumns: Array(0..<m),
            examples: PEFExamples(norms: perEx.map(\.norm), labels: labels, predictions: perEx.map(\.pred)))
    }

    /// D-PEFs of every example of `data` (one column of the model input per row of `data.features`).
    public static func diagonal(_ net: any SeededBackward, data: LabeledDataset, options: PEFOptions,
                                progress: (@Sendable (Int) -> Void)? = nil) -> DiagonalPEFs {
        let rows = perExample(data) { x -> DiagonalRow in
            let fac = FisherFactors.compute(net, example: x, likelihood: options.likelihood, classThreshold: options.classThreshold)
            progress?(1)
            return diagonalRow(fac, topK: options.topK)
        }
        return assembleDiagonal(rows, m: net.parameterCount, labels: data.labels)
    }

    /// LRM-PEFs of every example of `data`.
    public static func lowRank(_ net: any SeededBackward, data: LabeledDataset, options: PEFOptions,
                               progress: (@Sendable (Int) -> Void)? = nil) -> LowRankPEFs {
        let m = net.parameterCount
        let rows = perExample(data) { x -> LowRankRows in
            let fac = FisherFactors.compute(net, example: x, likelihood: options.likelihood, classThreshold: options.classThreshold)
            progress?(1)
            return lowRankRows(fac, topK: options.topK, parameters: m)
        }
        return assembleLowRank(rows, m: m, labels: data.labels)
    }

    /// Both representations from one backward pass per (example, class): equal to `diagonal` and `lowRank` with the
    /// same options, at the cost of one of them.
    public static func both(_ net: any SeededBackward, data: LabeledDataset, options: PEFOptions,
                            progress: (@Sendable (Int) -> Void)? = nil) -> (diagonal: DiagonalPEFs, lowRank: LowRankPEFs) {
        let m = net.parameterCount
        let rows = perExample(data) { x -> (DiagonalRow, LowRankRows) in
            let fac = FisherFactors.compute(net, example: x, likelihood: options.likelihood, classThreshold: options.classThreshold)
            progress?(1)
            return (diagonalRow(fac, topK: options.topK), lowRankRows(fac, topK: options.topK, parameters: m))
        }
        return (assembleDiagonal(rows.map(\.0), m: m, labels: data.labels), assembleLowRank(rows.map(\.1), m: m, labels: data.labels))
    }
}

/// Which columns of `matrix` have at least `minimumCount` stored entries (the code's `min_nonzero_per_col` /
/// `min_values_per_parameter`, default 1: npeff.md §1 "Pruning"), and the matrix restricted to them.
func pruneColumns(_ matrix: SparseRows, minimumCount: Int) -> (SparseRows, kept: [Int]) {
    let counts = matrix.columnCounts()
    let kept = counts.indices.filter { counts[$0] >= max(1, minimumCount) }
    return (restrictColumns(matrix, to: kept), kept)
}

/// `matrix` restricted to the columns `kept` (ascending), renumbered 0..<kept.count; other entries dropped.
func restrictColumns(_ matrix: SparseRows, to kept: [Int]) -> SparseRows {
    var newIndex = [Int32](repeating: -1, count: matrix.cols)
    for (n, o) in kept.enumerated() where o < matrix.cols { newIndex[o] = Int32(n) }
    var offsets = [0], cols = [Int32](), vals = [Float]()
    for i in 0..<matrix.rows {
        for e in matrix.rowOffsets[i]..<matrix.rowOffsets[i + 1] where newIndex[Int(matrix.columns[e])] >= 0 {
            cols.append(newIndex[Int(matrix.columns[e])]); vals.append(matrix.values[e])
        }
        offsets.append(cols.count)
    }
    return SparseRows(rows: matrix.rows, cols: kept.count, rowOffsets: offsets, columns: cols, values: vals)
}

extension DiagonalPEFs {
    /// Drops parameter positions stored by fewer than `minimumCount` examples (npeff.md §1, default 1 drops only
    /// never-selected positions).
    public func pruned(minimumCount: Int = 1) -> DiagonalPEFs {
        var out = self
        let (m, kept) = pruneColumns(matrix, minimumCount: minimumCount)
        out.matrix = m
        out.keptColumns = kept.map { keptColumns[$0] }
        return out
    }

    /// Restricted to the model positions `columns` (the kept columns of a decomposition), for coefficient fitting.
    public func restricted(toParameters columns: [Int]) -> DiagonalPEFs {
        var out = self
        out.matrix = restrictColumnsMapped(matrix, parameterToColumn(columns))
        out.keptColumns = columns
        return out
    }

    /// For each model position in `columns`, the column it has in `matrix` (or an out-of-range index).
    func parameterToColumn(_ columns: [Int]) -> [Int] {
        var position = [Int: Int]()
        for (c, p) in keptColumns.enumerated() { position[p] = c }
        return columns.map { position[$0] ?? Int.max }
    }
}

extension LowRankPEFs {
    /// Drops parameter positions with fewer than `minimumCount` stored entries over all (example, class) rows:
    /// the LRM code counts entries, not examples (npeff.md §1).
    public func pruned(minimumCount: Int = 1) -> LowRankPEFs {
        var out = self
        let (m, kept) = pruneColumns(matrix, minimumCount: minimumCount)
        out.matrix = m
        out.keptColumns = kept.map { keptColumns[$0] }
        return out
    }

    /// Restricted to the model positions `columns` (the kept columns of a decomposition), for coefficient fitting.
    public func restricted(toParameters columns: [Int]) -> LowRankPEFs {
        var position = [Int: Int]()
        for (c, p) in keptColumns.enumerated() { position[p] = c }
        var out = self
        out.matrix = restrictColumnsMapped(matrix, columns.map { position[$0] ?? Int.max })
        out.keptColumns = columns
        return out
    }
}

/// `matrix` with new column j taken from old column `source[j]` (out-of-range: empty); `source` need not be sorted.
func restrictColumnsMapped(_ matrix: SparseRows, _ source: [Int]) -> SparseRows {
    var newIndex = [Int32](repeating: -1, count: matrix.cols)
    for (n, o) in source.enumerated() where o < matrix.cols { newIndex[o] = Int32(n) }
    var offsets = [0], cols = [Int32](), vals = [Float]()
    for i in 0..<matrix.rows {
        var row = [(Int32, Float)]()
        for e in matrix.rowOffsets[i]..<matrix.rowOffsets[i + 1] where newIndex[Int(matrix.columns[e])] >= 0 {
            row.append((newIndex[Int(matrix.columns[e])], matrix.values[e]))
        }
        row.sort { $0.0 < $1.0 }
        cols += row.map(\.0); vals += row.map(\.1)
        offsets.append(cols.count)
    }
    return SparseRows(rows: matrix.rows, cols: source.count, rowOffsets: offsets, columns: cols, values: vals)
}

/// Thread-safe write-once slots for per-chunk results (each chunk writes only its own slot).
final class ResultSlots<T>: @unchecked Sendable {
    private let slots: UnsafeMutablePointer<T?>
    private let n: Int
    init(_ n: Int) {
        self.n = n
        slots = .allocate(capacity: max(1, n))
        slots.initialize(repeating: nil, count: max(1, n))
    }
    deinit { slots.deinitialize(count: max(1, n)); slots.deallocate() }
    /// Stores chunk `i`'s result.
    func set(_ i: Int, _ v: T) { slots[i] = v }
    /// All results in chunk order (read after every chunk is done).
    var values: [T?] { (0..<n).map { slots[$0] } }
}
