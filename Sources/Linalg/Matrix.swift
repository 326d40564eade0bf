// Matrix: a dense, row-major matrix of Float with value semantics.

/// A dense matrix of `Float`, stored contiguously in row-major order.
///
/// Shapes follow the PFC paper: a batch is a matrix with one **column** per example
/// (`d × B`). Element `(i, j)` lives at `storage[i * cols + j]`.
public struct Matrix: Sendable, Equatable {
    /// Number of rows.
    public private(set) var rows: Int
    /// Number of columns.
    public private(set) var cols: Int
    /// Row-major elements, `rows * cols` of them.
    public var storage: [Float]

    /// A `rows × cols` matrix filled with `value`.
    public init(rows: Int, cols: Int, repeating value: Float = 0) {
        precondition(rows >= 0 && cols >= 0, "negative matrix dimension")
        self.rows = rows
        self.cols = cols
        self.storage = [Float](repeating: value, count: rows * cols)
    }

    /// A `rows × cols` matrix over existing row-major elements.
    public init(rows: Int, cols: Int, storage: [Float]) {
        precondition(storage.count == rows * cols, "storage has \(storage.count) elements, expected \(rows * cols)")
        self.rows = rows
        self.cols = cols
        self.storage = storage
    }

    /// A matrix from nested rows; all rows must have the same length.
    public init(_ nested: [[Float]]) {
        let r = nested.count
        let c = nested.first?.count ?? 0
        precondition(nested.allSatisfy { $0.count == c }, "ragged rows")
        self.init(rows: r, cols: c, storage: nested.flatMap { $0 })
    }

    /// Number of elements.
    @inlinable public var count: Int { rows * cols }

    /// Element at row `i`, column `j`.
    @inlinable public subscript(i: Int, j: Int) -> Float {
        get { storage[i * cols + j] }
        set { storage[i * cols + j] = newValue }
    }

    /// The transpose, materialised.
    public func transposed() -> Matrix {
        var t = Matrix(rows: cols, cols: rows)
        storage.withUnsafeBufferPointer { src in
            t.storage.withUnsafeMutableBufferPointer { dst in
                for i in 0..<rows { for j in 0..<cols { dst[j * rows + i] = src[i * cols + j] } }
            }
        }
        return t
    }

    /// Row `i` as an array.
    public func row(_ i: Int) -> [Float] { Array(storage[(i * cols)..<((i + 1) * cols)]) }

    /// Column `j` as an array.
    public func column(_ j: Int) -> [Float] { (0..<rows).map { storage[$0 * cols + j] } }

    /// Columns `range` as a new matrix (`rows × range.count`).
    public func columns(_ range: Range<Int>) -> Matrix {
        var out = Matrix(rows: rows, cols: range.count)
        for i in 0..<rows {
            for (o, j) in range.enumerated() { out.storage[i * range.count + o] = storage[i * cols + j] }
        }
        return out
    }

    /// Sum of squares of all elements (Frobenius norm squared), accumulated in Double.
    public var squaredNorm: Double { storage.reduce(0.0) { $0 + Double($1) * Double($1) } }

    /// Reshapes without copying; the element count must not change.
    public func reshaped(rows newRows: Int, cols newCols: Int) -> Matrix {
        Matrix(rows: newRows, cols: newCols, storage: storage)
    }
}
