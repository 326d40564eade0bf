// BasisGrowth: append fresh basis columns to every PFC block, so a task whose sliding window would
// run past K can still be trained (issue 6, "Capacity"; research/pfc.md §3 capacity rule).
import Linalg

/// Why a network cannot be grown or edited column-wise.
public enum ColumnEditError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Only PFC kinds have basis columns.
    case notPFC(ModelKind)
    /// A column index or count is out of range.
    case outOfRange(String)

    public var description: String {
        switch self {
        case let .notPFC(kind): return "a \(kind.rawValue) model has no basis columns; only pfc and pfc2 models do"
        case let .outOfRange(why): return why
        }
    }
}

/// Growing the basis of PFC networks.
public enum BasisGrowth {
    /// A copy of `network` with `count` new columns appended to every matrix of every PFC block
    /// (W_x and W_y of each block; both blocks of `pfc2`), initialised as at creation,
    /// U(0,1)·0.01 (research/pfc.md §1.3), from `seed`, matrix by matrix in `parameters` order.
    /// Existing columns are unchanged bit for bit and the architecture's `basis` grows by `count`.
    public static func appendColumns(to network: any Network, count: Int, seed: UInt64) throws(ColumnEditError) -> any Network {
        let arch = network.architecture
        guard arch.kind.blockCount > 0 else { throw .notPFC(arch.kind) }
        guard count >= 0 else { throw .outOfRange("cannot append \(count) columns") }
        var rng = SeededRandom(seed: seed)
        let grown = network.parameters.map { p -> Parameter in
            let fresh = rng.uniformMatrix(rows: p.value.rows, cols: count, low: 0, high: 0.01)
            return Parameter(name: p.name, value: p.value.appendingColumns(fresh), nonnegative: p.nonnegative)
        }
        var newArch = arch
        newArch.basis += count
        do { return try NetworkFactory.make(newArch, parameters: grown) } catch {
            throw .outOfRange("grown parameters do not fit the architecture: \(error)")
        }
    }
}

extension Matrix {
    /// `[self, other]`: the columns of `other` appended to the right (same row count).
    func appendingColumns(_ other: Matrix) -> Matrix {
        precondition(rows == other.rows, "row counts differ")
        let c = cols + other.cols
        var out = Matrix(rows: rows, cols: c)
        for i in 0..<rows {
            for j in 0..<cols { out.storage[i * c + j] = storage[i * cols + j] }
            for j in 0..<other.cols { out.storage[i * c + cols + j] = other.storage[i * other.cols + j] }
        }
        return out
    }
}
