// SparsityGauges: how sparse this process's PFC codes are, at `/metrics` (issue 14). The active-set
// FISTA measures, per unrolled inference pass, the fraction of code entries the clamp left above
// the floor after each iteration (`FISTAStatistics`); training progress events carry it per job, and
// these gauges show the most recent training step and prediction batch of the whole process.
import PFC
import Synchronization

/// The most recent training pass's and prediction pass's `FISTAStatistics`, as Prometheus text.
final class SparsityGauges: Sendable {
    /// The iterations t whose active fraction is exported (those ≤ the pass's N), so the series stay
    /// few whatever `iterations` a model uses.
    static let exportedIterations = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]

    private struct State {
        var training: FISTAStatistics?
        var prediction: FISTAStatistics?
        var trainingPasses = 0
        var predictionPasses = 0
    }
    private let state = Mutex(State())

    /// Records one pass (training when `s.training`); nil (a model without PFC blocks) is ignored.
    func record(_ s: FISTAStatistics?) {
        guard let s, !s.activeFraction.isEmpty else { return }
        state.withLock { st in
            if s.training { st.training = s; st.trainingPasses &+= 1 } else { st.prediction = s; st.predictionPasses &+= 1 }
        }
    }

    /// `pfc_fista_active_fraction{phase,iteration}`, `pfc_fista_active_fraction_mean{phase}`,
    /// `pfc_fista_sparse_share{phase}` and `pfc_fista_passes_total{phase}`.
    func prometheusText() -> String {
        let st = state.withLock { $0 }
        let phases: [(String, FISTAStatistics?, Int)] = [("training", st.training, st.trainingPasses),
                                                         ("prediction", st.prediction, st.predictionPasses)]
        var text = "# HELP pfc_fista_active_fraction Fraction of code entries above the floor after FISTA iteration t, "
            + "in the last training step (its last PFC block) or prediction batch on this process.\n"
            + "# TYPE pfc_fista_active_fraction gauge\n"
        for (phase, s, _) in phases {
            guard let s else { continue }
            for t in Self.exportedIterations where t <= s.activeFraction.count {
                text += "pfc_fista_active_fraction{phase=\"\(phase)\",iteration=\"\(t)\"} \(Self.number(s.activeFraction[t - 1]))\n"
            }
        }
        text += "# HELP pfc_fista_active_fraction_mean The same fraction averaged over the pass's iterations.\n"
            + "# TYPE pfc_fista_active_fraction_mean gauge\n"
        for (phase, s, _) in phases {
            if let s { text += "pfc_fista_active_fraction_mean{phase=\"\(phase)\"} \(Self.number(s.meanActiveFraction))\n" }
        }
        text += "# HELP pfc_fista_sparse_share Share of that pass's (iteration, chunk) products run on the active-set kernels.\n"
            + "# TYPE pfc_fista_sparse_share gauge\n"
        for (phase, s, _) in phases {
            if let s { text += "pfc_fista_sparse_share{phase=\"\(phase)\"} \(Self.number(s.sparseFraction))\n" }
        }
        text += "# HELP pfc_fista_passes_total FISTA passes recorded by these gauges (training steps, prediction batches).\n"
            + "# TYPE pfc_fista_passes_total counter\n"
        for (phase, _, n) in phases { text += "pfc_fista_passes_total{phase=\"\(phase)\"} \(n)\n" }
        return text
    }

    private static func number(_ v: Float) -> String { v.isFinite ? "\(v)" : "0" }
}
