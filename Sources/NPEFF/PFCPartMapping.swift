// PFCPartMapping: where in a PFC network a component's pseudo-Fisher mass lies, per basis column (block, k).
import Linalg
import PFC

/// The share of one component's pseudo-Fisher mass on each PFC basis column.
public struct PFCPartShares: Sendable, Equatable {
    /// `shares[block][k]`: the fraction of the mass on column k of that block's W_x and W_y (hidden unit k of the MLP:
    /// row k of w1 and b1, column k of w2).
    public var shares: [[Double]]
    /// The fraction on parameters that belong to no basis column (the MLP's b2).
    public var unassigned: Double
}

/// Maps component mass onto PFC parts.
public enum PFCPartMapping {
    /// The (block, k) of every model parameter position, in `flatParameters` order (nil: no basis column).
    public static func parts(of net: any Network) -> [(block: Int, k: Int)?] {
        var out = [(block: Int, k: Int)?]()
        for (index, p) in net.parameters.enumerated() {
            let m = p.value
            switch net.architecture.kind {
            case .pfc, .pfc2: // wx, wy (, wx2, wy2): d×K with k the column
                let block = index / 2
                for e in 0..<m.count { out.append((block, e % m.cols)) }
            case .factorizedRNN, .rnn: // not a PFC classifier: no basis parts
                out.append(contentsOf: [(block: Int, k: Int)?](repeating: nil, count: m.count))
            case .mlp: // w1 (h×d), b1 (h×1): unit = row; w2 (C×h): unit = column; b2: none
                for e in 0..<m.count {
                    switch p.name {
                    case "w1", "b1": out.append((0, e / m.cols))
                    case "w2": out.append((0, e % m.cols))
                    default: out.append(nil)
                    }
                }
            }
        }
        return out
    }

    /// Shares of `mass` (non-negative, one value per kept position, over `keptColumns`) per (block, k).
    public static func shares(mass: [Float], keptColumns: [Int], network net: any Network) -> PFCPartShares {
        let parts = parts(of: net)
        let blocks = net.architecture.kind == .pfc2 ? 2 : 1
        var shares = [[Double]](repeating: [Double](repeating: 0, count: net.architecture.basis), count: blocks)
        var unassigned = 0.0, total = 0.0
        for (v, p) in zip(mass, keptColumns) {
            let x = Double(v)
            total += x
            if let part = parts[p] { shares[part.block][part.k] += x } else { unassigned += x }
        }
        let scale = total > 0 ? 1 / total : 0
        return PFCPartShares(shares: shares.map { $0.map { $0 * scale } }, unassigned: unassigned * scale)
    }

    /// D-NPEFF component j: H_j = Diag(h_j), so the mass at a position is h_j[p].
    public static func shares(_ d: DNPEFFDecomposition, component j: Int, network: any Network) -> PFCPartShares {
        shares(mass: d.h.row(j), keptColumns: d.keptColumns, network: network)
    }

    /// LRM-NPEFF component j: H_j = g_j g_jᵀ, whose diagonal (the mass at a position) is g_j[p]².
    public static func shares(_ d: LRMNPEFFDecomposition, component j: Int, network: any Network) -> PFCPartShares {
        shares(mass: d.g.row(j).map { $0 * $0 }, keptColumns: d.keptColumns, network: network)
    }
}
