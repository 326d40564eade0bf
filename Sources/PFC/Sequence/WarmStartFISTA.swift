// WarmStartFISTA: the factorized RNN's view of FISTAInference: started from a given code instead
// of the floor, with the gradient with respect to that start (research/pfc.md §2.2: h_t is
// warm-started from h_{t−1}, and with BPTT the gradient flows through it). One kernel serves both.
import Linalg

/// What the warm-started forward pass keeps for its backward pass.
typealias WarmStartTape = FISTATape

/// Recorded stop-gradient values of one inference (η and the N×B scales), so tests can freeze them.
struct FISTAStopGradients: Sendable {
    var step: Float
    var scales: [Float]
}

/// `FISTAInference` started from `start` (B×K): `Z_0 = H_{−1} = start`, as the reference
/// `fista_right_update(…, H_tran_init)` does; nil starts from the floor.
enum WarmStartFISTA {
    /// Runs the inference. `w`: d×K, `x`: d×B, `start`: B×K (nil starts from the floor).
    /// `prepared`: A = WᵀW and η computed once for the whole sequence (W is the same at every step).
    /// The active-set products of `FISTAInference` apply unchanged (research/pfc.md §1.2; issue 14):
    /// with a warm start Z_0 is dense, so the first iteration is dense and the later ones go sparse
    /// as the code's active set shrinks.
    static func forward(w: Matrix, x: Matrix, start: Matrix?, settings: FISTASettings,
                        frozen: FISTAStopGradients?, keepTape: Bool,
                        prepared: FISTAInference.Constants? = nil) -> (hT: Matrix, tape: WarmStartTape?) {
        var s = settings
        if let frozen { s.frozen = (frozen.step, frozen.scales) }
        let r = FISTAInference.forwardWithStatistics(wx: w, x: x, settings: s, keepTape: keepTape, threads: ComputeThreads.count,
                                                     start: start, prepared: prepared)
        return (r.hT, r.tape)
    }

    /// Backward through all N iterations (consumes the tape). Given ∂L/∂Hᵀ (B×K), returns ∂L/∂W (d×K),
    /// ∂L/∂x (d×B) and ∂L/∂start (B×K).
    static func backward(tape: inout WarmStartTape, w: Matrix, x: Matrix, gradHT: Matrix, settings: FISTASettings)
        -> (gradW: Matrix, gradX: Matrix, gradStart: Matrix)
    {
        let g = FISTAInference.backwardWithStart(tape: &tape, wx: w, x: x, gradHT: gradHT, settings: settings)
        return (g.gradWx, g.gradX, g.gradStart)
    }
}
