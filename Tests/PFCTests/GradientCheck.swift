import Testing
@testable import Linalg
@testable import PFC

/// Central finite differences compared with the analytic gradient.
struct GradientCheck {
    var rng = SeededRandom(seed: 99)

    /// Checks the directional derivative ⟨∇L, D⟩ against (L(p+εD) − L(p−εD)) / 2ε, for D along the
    /// gradient itself and for random D, over all parameters together and each one alone. D is
    /// scaled entry-wise by |p| + 1e-2 so tiny weights are not pushed across the floor. The error
    /// is relative to ‖∇L ⊙ D‖ (so cancellation in ⟨∇L, D⟩ does not inflate it). Returns the worst.
    mutating func worstRelativeError(
        parameters: [Matrix], gradients: [Matrix], epsilon: Float = 1e-3, directions: Int = 2,
        loss: ([Matrix]) -> Float
    ) -> Float {
        var worst: Float = 0
        let subsets: [[Int]] = [Array(parameters.indices)] + parameters.indices.map { [$0] }
        for subset in subsets {
            for trial in 0...directions {
                var plus = parameters, minus = parameters
                var analytic: Double = 0, norm: Double = 0
                for p in subset {
                    let gmax = gradients[p].storage.map(abs).max() ?? 0
                    for i in 0..<parameters[p].count {
                        let scale = abs(parameters[p].storage[i]) + 1e-2
                        let dir = trial == 0 ? gradients[p].storage[i] / max(gmax, 1e-30) : rng.uniform() * 2 - 1
                        let d = dir * scale
                        plus[p].storage[i] += epsilon * d
                        minus[p].storage[i] -= epsilon * d
                        let term = Double(gradients[p].storage[i]) * Double(d)
                        analytic += term
                        norm += term * term
                    }
                }
                let fd = (Double(loss(plus)) - Double(loss(minus))) / (2 * Double(epsilon))
                let denominator = max(norm.squareRoot(), abs(analytic), 1e-9)
                worst = max(worst, Float(abs(fd - analytic) / denominator))
            }
        }
        return worst
    }
}

/// Freezes every block's stop-gradient step and scales at their values for `x`, so finite
/// differences see the same function autograd differentiates (research/pfc.md §1.2: η and s are no_grad).
func freeze(_ block: inout PFCBlock, on x: Matrix) {
    let act = block.forward(x, keepTape: true)
    block.settings.frozen = act.stopGradients
}
