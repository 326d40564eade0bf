// SlidingWindowOptimizer: the official code's `RMSpropOptimizerSlidingWindow` (research/pfc.md §3).
// Only a contiguous band of basis columns [⌊p⌋, ⌊p + w⌋) learns at each step; the band moves right
// by s columns after every step, so each mini-batch writes into a known range of columns.
import Linalg

/// Why a sliding-window step or schedule cannot run.
public enum SlidingWindowError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The window [c0, c1) runs past the basis: the run needs `needed` columns, the network has `available`.
    case capacityExceeded(needed: Int, available: Int)
    /// The window needs every parameter to be a matrix over the same K basis columns (PFC kinds only).
    case incompatibleParameters(String)
    /// Width must be ≥ 1, slide and start finite and ≥ 0.
    case invalidSchedule(String)

    public var description: String {
        switch self {
        case let .capacityExceeded(needed, available):
            return "the learnable window runs past the basis: this needs K = \(needed) columns, the model has \(available)"
        case let .incompatibleParameters(why): return "the sliding window cannot train this model: \(why)"
        case let .invalidSchedule(why): return why
        }
    }
}

/// RMSprop restricted to a sliding band of basis columns (research/pfc.md §3, checklist §7.3):
///
/// ```
/// c0 = ⌊p⌋; c1 = ⌊p + w⌋; p += s                         // window fixed BEFORE advancing
/// ms[:, c0:c1] = α·ms[:, c0:c1] + (1−α)·G[:, c0:c1]²
/// P[:, c0:c1] -= lr · G[:, c0:c1] / (√ms[:, c0:c1] + ε)
/// P[:, c0:c1] -= wd · P[:, c0:c1]
/// P[P < 1e-5] = 1e-5                                       // non-negative parameters, ALL columns
/// ```
///
/// The same columns of every parameter are trained (W_x and W_y share the column index k, and both
/// blocks of `pfc2` have the same K). The position is kept in closed form, p = start + s·steps, which
/// equals the official `p += s` for the dyadic slides in use (2.5, 0.25) and never drifts otherwise,
/// so `requiredBasis` predicts every window exactly.
public struct SlidingWindowOptimizer: Optimizer {
    /// Learning rate.
    public var learningRate: Float
    /// Decoupled per-step decay (multiplies the window's columns by 1 − wd; not scaled by lr).
    public var weightDecay: Float
    /// Smoothing constant α.
    public var alpha: Float = 0.99
    /// ε added to √ms.
    public var epsilon: Float = 1e-8
    /// Window width w in columns.
    public let width: Int
    /// Columns the window moves after every step (s; may be fractional).
    public let slide: Double
    /// The position p returns to on `reset()` (`start_col_f0`).
    public let start: Double
    /// Steps (with or without update) since the start or the last `reset()`.
    public private(set) var stepsSinceReset: Int = 0
    /// Why the last `step(_:gradients:)` did nothing, or nil when it ran.
    public private(set) var lastError: SlidingWindowError?
    /// Running mean squares, full-sized per parameter; zero outside every window used so far.
    var meanSquare: [[Float]] = []

    /// A window of `width` columns at `start`, moving `slide` columns per step, with zero statistics.
    public init(learningRate: Float, weightDecay: Float, width: Int, slide: Double, start: Double = 0,
                alpha: Float = 0.99, epsilon: Float = 1e-8) {
        self.learningRate = learningRate
        self.weightDecay = weightDecay
        self.width = width
        self.slide = slide
        self.start = start
        self.alpha = alpha
        self.epsilon = epsilon
    }

    /// The float start column p of the next step.
    public var position: Double { Self.position(start: start, slide: slide, step: stepsSinceReset) }

    /// The columns [c0, c1) the next step will train (`get_learnable_window_borders`).
    public var window: Range<Int> { Self.window(start: start, width: width, slide: slide, step: stepsSinceReset) }

    /// p after `step` steps from `start`.
    public static func position(start: Double, slide: Double, step: Int) -> Double { start + slide * Double(step) }

    /// The window [⌊p⌋, ⌊p + w⌋) of step `step` (0-based) of a schedule starting at `start`.
    public static func window(start: Double, width: Int, slide: Double, step: Int) -> Range<Int> {
        let p = position(start: start, slide: slide, step: step)
        // Saturating: a position past any basis the limits allow still never traps converting to Int
        // (a caller then refuses the window as too large for the model).
        func column(_ v: Double) -> Int { v.isFinite && v < 4e18 ? Int(Swift.max(0, v).rounded(.down)) : Int(4e18) }
        let c0 = column(p), c1 = column(p + Double(width))
        return c0..<max(c0, c1)
    }

    /// The basis size K a run of `steps` steps (with or without update) needs: the right border of
    /// its last window, ⌊start + s·(steps − 1) + w⌋ (0 for no steps). This is the exact form of the
    /// capacity rule of research/pfc.md §3 (`start + s·steps + w` overestimates by up to s).
    public static func requiredBasis(start: Double, width: Int, slide: Double, steps: Int) -> Int {
        steps > 0 ? window(start: start, width: width, slide: slide, step: steps - 1).upperBound : 0
    }

    /// A message naming the problem with a schedule, or nil.
    public static func scheduleProblem(width: Int, slide: Double, start: Double) -> String? {
        if width < 1 { return "window width must be at least 1" }
        if !(slide >= 0) || !slide.isFinite { return "slide must be a finite number ≥ 0" }
        if !(start >= 0) || !start.isFinite { return "window start must be a finite number ≥ 0" }
        // Column arithmetic goes through Int: keep every position far from overflow.
        if width > 1 << 30 || slide > 1e9 || start > 1e12 { return "window, slide or start is unreasonably large" }
        return nil
    }

    /// The statistics and the steps since the last reset (the position is start + s·steps).
    public var state: OptimizerState {
        OptimizerState(kind: "sliding_window", buffers: meanSquare.map(FloatBuffer.init), steps: stepsSinceReset)
    }

    /// Continues from a checkpointed `state` of a window with the same width, slide and start.
    public mutating func restore(_ state: OptimizerState) throws(CheckpointError) {
        meanSquare = try checkedBuffers(state, kind: "sliding_window", sets: 1)
        guard state.steps >= 0 else { throw CheckpointError("negative window steps") }
        stepsSinceReset = state.steps
    }

    /// Moves the window back to `start` (`reset_learnable_window`); the statistics are kept.
    public mutating func reset() { stepsSinceReset = 0 }

    /// Advances the window by s without touching any parameter or statistic (`step_without_update`):
    /// a skipped batch keeps the batch → column map of research/pfc.md §4.
    public mutating func stepWithoutUpdate() { stepsSinceReset += 1 }

    /// The basis size K shared by every parameter, or the reason there is none.
    public static func sharedBasis(of parameters: [Parameter]) throws(SlidingWindowError) -> Int {
        guard let k = parameters.first?.value.cols else { throw .incompatibleParameters("no parameters") }
        for p in parameters where p.value.cols != k || p.value.rows < 1 {
            throw .incompatibleParameters("parameter \(p.name) is \(p.value.rows)×\(p.value.cols); every matrix must have K = \(k) columns")
        }
        return k
    }

    /// One windowed RMSprop step; returns the columns it trained. Throws, changing nothing (not even
    /// the position), when the window would run past K or the parameters do not share K.
    @discardableResult
    public mutating func stepChecked(_ parameters: inout [Parameter], gradients: [Matrix]) throws(SlidingWindowError) -> Range<Int> {
        if let why = Self.scheduleProblem(width: width, slide: slide, start: start) { throw .invalidSchedule(why) }
        let k = try Self.sharedBasis(of: parameters)
        let win = window                                            // fixed before advancing (§3)
        guard win.upperBound <= k else { throw .capacityExceeded(needed: win.upperBound, available: k) }
        guard gradients.count == parameters.count,
              zip(gradients, parameters).allSatisfy({ $0.rows == $1.value.rows && $0.cols == $1.value.cols })
        else { throw .incompatibleParameters("gradients do not match the parameters") }
        if meanSquare.count != parameters.count || zip(meanSquare, parameters).contains(where: { $0.count != $1.value.count }) {
            meanSquare = parameters.map { [Float](repeating: 0, count: $0.value.count) }
        }
        stepsSinceReset += 1
        let (a, lr, wd, eps) = (alpha, learningRate, weightDecay, epsilon)
        let (c0, c1) = (win.lowerBound, win.upperBound)
        for p in parameters.indices {
            let nonneg = parameters[p].nonnegative, rows = parameters[p].value.rows
            gradients[p].storage.withUnsafeBufferPointer { g in
                meanSquare[p].withUnsafeMutableBufferPointer { ms in
                    parameters[p].value.storage.withUnsafeMutableBufferPointer { w in
                        for r in 0..<rows {
                            let base = r * k
                            for i in (base + c0)..<(base + c1) {
                                let gi = g[i]
                                let m = a * ms[i] + (1 - a) * gi * gi
                                ms[i] = m
                                var v = w[i] - lr * gi / (m.squareRoot() + eps)
                                v -= wd * v
                                w[i] = v
                            }
                        }
                        // The clamp covers every column (§3); outside the window it only touches
                        // values below the floor, so columns that are already ≥ 1e-5 stay bit-identical.
                        if nonneg {
                            for i in 0..<w.count where w[i] < nonnegativeFloor { w[i] = nonnegativeFloor }
                        }
                    }
                }
            }
        }
        return win
    }

    /// `Optimizer` conformance: `stepChecked`, but an error leaves everything unchanged and is kept
    /// in `lastError` instead of being thrown. Prefer `stepChecked`, or check `requiredBasis` first.
    public mutating func step(_ parameters: inout [Parameter], gradients: [Matrix]) {
        do { try stepChecked(&parameters, gradients: gradients); lastError = nil } catch { lastError = error }
    }
}
