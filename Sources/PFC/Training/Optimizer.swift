// Optimizer: the paper's RMSprop and Adam, with decoupled per-step weight decay and the
// non-negativity clip (research/pfc.md §1.3).
import Foundation
import Linalg

/// Which optimizer the trainer uses.
public enum OptimizerKind: String, Sendable, Codable, CaseIterable {
    /// The official code's RMSprop (α 0.99, ε 1e-8, no momentum, no bias correction).
    case rmsprop
    /// Adam (β₁ 0.9, β₂ 0.999, ε 1e-8, bias-corrected).
    case adam
}

/// An optimizer that updates parameters in place from their gradients.
public protocol Optimizer: Sendable {
    /// Applies one update. `gradients` align with `parameters`.
    mutating func step(_ parameters: inout [Parameter], gradients: [Matrix])
    /// The running statistics, to checkpoint a run.
    var state: OptimizerState { get }
    /// Continues from `state` (taken from an optimizer of the same kind and shape).
    mutating func restore(_ state: OptimizerState) throws(CheckpointError)
}

/// Checks that checkpointed buffers fit `count` parameters of the given sizes (empty: not started yet).
func checkedBuffers(_ state: OptimizerState, kind: String, sets: Int) throws(CheckpointError) -> [[Float]] {
    guard state.kind == kind else { throw CheckpointError("the checkpoint holds \(state.kind) state, this run uses \(kind)") }
    guard sets > 0, state.buffers.count % sets == 0 else { throw CheckpointError("the checkpoint's \(kind) state has \(state.buffers.count) buffers") }
    return state.buffers.map(\.values)
}

/// Lower bound of non-negative parameters (`param[param < 1e-5] = 1e-5`).
public let nonnegativeFloor: Float = 1e-5

/// The official code's `RMSpropOptimizerCustom` (research/pfc.md §1.3):
/// `ms ← α·ms + (1−α)·g²;  p ← p − lr·g/(√ms + ε);  p ← p − wd·p;  clip p ≥ 1e-5 when non-negative`.
/// The decay multiplies p by (1 − wd) every step and is not scaled by lr.
public struct RMSprop: Optimizer {
    /// Learning rate.
    public var learningRate: Float
    /// Decoupled per-step decay.
    public var weightDecay: Float
    /// Smoothing constant α.
    public var alpha: Float = 0.99
    /// ε added to √ms.
    public var epsilon: Float = 1e-8
    var meanSquare: [[Float]] = []

    /// An RMSprop with zero-initialised statistics.
    public init(learningRate: Float, weightDecay: Float, alpha: Float = 0.99, epsilon: Float = 1e-8) {
        self.learningRate = learningRate
        self.weightDecay = weightDecay
        self.alpha = alpha
        self.epsilon = epsilon
    }

    public var state: OptimizerState { OptimizerState(kind: "rmsprop", buffers: meanSquare.map(FloatBuffer.init), steps: 0) }

    public mutating func restore(_ state: OptimizerState) throws(CheckpointError) {
        meanSquare = try checkedBuffers(state, kind: "rmsprop", sets: 1)
    }

    public mutating func step(_ parameters: inout [Parameter], gradients: [Matrix]) {
        if meanSquare.isEmpty { meanSquare = parameters.map { [Float](repeating: 0, count: $0.value.count) } }
        let (a, lr, wd, eps) = (alpha, learningRate, weightDecay, epsilon)
        for p in parameters.indices {
            let nonneg = parameters[p].nonnegative
            gradients[p].storage.withUnsafeBufferPointer { g in
                meanSquare[p].withUnsafeMutableBufferPointer { ms in
                    parameters[p].value.storage.withUnsafeMutableBufferPointer { w in
                        for i in 0..<w.count {
                            let gi = g[i]
                            let m = a * ms[i] + (1 - a) * gi * gi
                            ms[i] = m
                            var v = w[i] - lr * gi / (m.squareRoot() + eps)
                            v -= wd * v
                            w[i] = nonneg ? Swift.max(v, nonnegativeFloor) : v
                        }
                    }
                }
            }
        }
    }
}

/// Adam with bias correction; weight decay is the same decoupled per-step decay as RMSprop's.
public struct Adam: Optimizer {
    /// Learning rate.
    public var learningRate: Float
    /// Decoupled per-step decay.
    public var weightDecay: Float
    /// First-moment decay β₁.
    public var beta1: Float = 0.9
    /// Second-moment decay β₂.
    public var beta2: Float = 0.999
    /// ε added to √v̂.
    public var epsilon: Float = 1e-8
    var m: [[Float]] = [], v: [[Float]] = []
    var t: Int = 0

    /// An Adam with zero-initialised moments.
    public init(learningRate: Float, weightDecay: Float) {
        self.learningRate = learningRate
        self.weightDecay = weightDecay
    }

    public var state: OptimizerState { OptimizerState(kind: "adam", buffers: (m + v).map(FloatBuffer.init), steps: t) }

    public mutating func restore(_ state: OptimizerState) throws(CheckpointError) {
        let b = try checkedBuffers(state, kind: "adam", sets: 2)
        m = Array(b[..<(b.count / 2)])
        v = Array(b[(b.count / 2)...])
        t = state.steps
    }

    public mutating func step(_ parameters: inout [Parameter], gradients: [Matrix]) {
        if m.isEmpty {
            m = parameters.map { [Float](repeating: 0, count: $0.value.count) }
            v = m
        }
        t += 1
        let c1 = 1 - powf(beta1, Float(t)), c2 = 1 - powf(beta2, Float(t))
        let (b1, b2, lr, wd, eps) = (beta1, beta2, learningRate, weightDecay, epsilon)
        for p in parameters.indices {
            let nonneg = parameters[p].nonnegative
            gradients[p].storage.withUnsafeBufferPointer { g in
                m[p].withUnsafeMutableBufferPointer { mp in
                    v[p].withUnsafeMutableBufferPointer { vp in
                        parameters[p].value.storage.withUnsafeMutableBufferPointer { w in
                            for i in 0..<w.count {
                                mp[i] = b1 * mp[i] + (1 - b1) * g[i]
                                vp[i] = b2 * vp[i] + (1 - b2) * g[i] * g[i]
                                var x = w[i] - lr * (mp[i] / c1) / ((vp[i] / c2).squareRoot() + eps)
                                x -= wd * x
                                w[i] = nonneg ? Swift.max(x, nonnegativeFloor) : x
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Builds the optimizer named by `kind`.
public func makeOptimizer(_ kind: OptimizerKind, learningRate: Float, weightDecay: Float) -> any Optimizer {
    switch kind {
    case .rmsprop: return RMSprop(learningRate: learningRate, weightDecay: weightDecay)
    case .adam: return Adam(learningRate: learningRate, weightDecay: weightDecay)
    }
}
