// Forgetting: knowledge removal by zeroing basis columns (research/pfc.md §4, checklist §7.4).
import Linalg

/// What `Forgetting.zeroColumns` did.
public struct ForgettingResult: Sendable {
    /// The network with the columns zeroed.
    public var network: any Network
    /// Every requested column, sorted, without repeats.
    public var columns: [Int]
    /// Requested columns that were already exact zeros in every matrix of every block (already
    /// reset); they are left as they are and not reported as newly reset.
    public var alreadyReset: [Int]
    /// Requested columns that held a non-zero value and are now zero.
    public var reset: [Int]
}

/// Knowledge removal (research/pfc.md §4): set to exact zeros, in every matrix of every PFC block
/// (W_x and W_y; both blocks of `pfc2`), the basis columns that were learnable while the unwanted
/// batches trained. No clip afterwards (a zero column contributes nothing to W_x h or W_y h) and no
/// retraining. The columns to pass are the union of those batches' `BatchRecord.windows`.
public enum Forgetting {
    /// The sorted, de-duplicated columns of `ranges`.
    public static func columns(of ranges: [Range<Int>]) -> [Int] {
        var set = Set<Int>()
        for r in ranges { set.formUnion(r) }
        return set.sorted()
    }

    /// Columns in `0..<K` whose entries are exactly zero in every matrix of every block.
    public static func zeroColumns(of network: any Network) -> [Int] {
        let params = network.parameters
        guard network.architecture.kind.blockCount > 0, let k = params.first?.value.cols else { return [] }
        return (0..<k).filter { isZero(column: $0, in: params) }
    }

    /// A copy of `network` with the columns of `ranges` set to exact zeros (a pure function: the
    /// argument is not changed, and the result depends only on its inputs). Throws when the network
    /// is not a PFC model or a column is outside `0..<K`, changing nothing.
    public static func zeroColumns(_ ranges: [Range<Int>], of network: any Network) throws(ColumnEditError) -> ForgettingResult {
        let arch = network.architecture
        guard arch.kind.blockCount > 0 else { throw .notPFC(arch.kind) }
        var params = network.parameters
        let k = params.first?.value.cols ?? 0
        let cols = columns(of: ranges)
        if let bad = cols.first(where: { $0 < 0 || $0 >= k }) {
            throw .outOfRange("column \(bad) is outside the basis 0..<\(k)")
        }
        let already = cols.filter { isZero(column: $0, in: params) }
        let alreadySet = Set(already)
        let fresh = cols.filter { !alreadySet.contains($0) }
        for p in params.indices {
            let rows = params[p].value.rows
            params[p].value.storage.withUnsafeMutableBufferPointer { w in
                for r in 0..<rows { for c in fresh { w[r * k + c] = 0 } }
            }
        }
        var out = network
        out.parameters = params
        return ForgettingResult(network: out, columns: cols, alreadyReset: already, reset: fresh)
    }

    static func isZero(column c: Int, in params: [Parameter]) -> Bool {
        params.allSatisfy { p in
            let k = p.value.cols
            return (0..<p.value.rows).allSatisfy { p.value.storage[$0 * k + c] == 0 }
        }
    }
}
