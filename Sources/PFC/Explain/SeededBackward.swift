// SeededBackward: per-example gradients of arbitrary linear functionals of the outputs, ∂⟨v, ŷ(x)⟩/∂θ,
// through the engine's own backward passes. NPEFF builds per-example Fishers from them
// (∇log p_c = Jᵀ(e_c − p) for softmax, ∇ŷ_j = Jᵀe_j for the Gaussian likelihood).
import Linalg

/// A network that can differentiate seeded outputs of one example with respect to all of its parameters.
public protocol SeededBackward: Network {
    /// For one example `x` (d×1): computes ŷ (C values), asks `seeds(ŷ)` for seed vectors v (C values each)
    /// and returns, for each v, ∂⟨v, ŷ⟩/∂θ flattened in `parameters` order (each matrix row-major).
    /// The forward pass runs once; the backward pass once per seed.
    func seededGradients(example x: Matrix, seeds: ([Float]) -> [[Float]]) -> (output: [Float], gradients: [[Float]])
}

extension Network {
    /// Total number of scalar parameters m (the length of a flattened gradient).
    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.value.count } }

    /// All parameters flattened in `parameters` order (row-major per matrix).
    public var flatParameters: [Float] { parameters.flatMap { $0.value.storage } }

    /// A copy of the network with parameters read from a flat vector (same layout as `flatParameters`).
    public func withFlatParameters(_ flat: [Float]) -> Self {
        precondition(flat.count == parameterCount, "flat parameter vector has \(flat.count) values, expected \(parameterCount)")
        var copy = self
        var offset = 0
        copy.parameters = parameters.map { p in
            defer { offset += p.value.count }
            return Parameter(name: p.name, value: Matrix(rows: p.value.rows, cols: p.value.cols,
                                                        storage: Array(flat[offset..<(offset + p.value.count)])),
                             nonnegative: p.nonnegative)
        }
        return copy
    }
}

extension PFCClassifier: SeededBackward {
    public func seededGradients(example x: Matrix, seeds: ([Float]) -> [[Float]]) -> (output: [Float], gradients: [[Float]]) {
        precondition(x.cols == 1, "one example at a time")
        let act = block.forward(x, keepTape: true)
        let y = act.y.storage
        let grads = seeds(y).map { v -> [Float] in
            var a = act // the backward consumes the tape; each seed gets its own copy
            let g = block.backward(&a, x: x, gradY: Matrix(rows: y.count, cols: 1, storage: v))
            return g.gradWx.storage + g.gradWy.storage
        }
        return (y, grads)
    }
}

extension ResidualPFCNetwork: SeededBackward {
    public func seededGradients(example x: Matrix, seeds: ([Float]) -> [[Float]]) -> (output: [Float], gradients: [[Float]]) {
        precondition(x.cols == 1, "one example at a time")
        let a1 = first.forward(x, keepTape: true)
        let r = residual(x, a1.y)
        let a2 = second.forward(r, keepTape: true)
        let y = a2.y.storage
        let floor = first.settings.floor
        let grads = seeds(y).map { v -> [Float] in
            var b2 = a2
            let g2 = second.backward(&b2, x: r, gradY: Matrix(rows: y.count, cols: 1, storage: v))
            // r = max(x − y1, floor): ∂r/∂y1 = −[x − y1 ≥ floor] (as in lossAndGradients).
            var gradY1 = Matrix(rows: g2.gradX.rows, cols: 1)
            for i in 0..<gradY1.count where x.storage[i] - a1.y.storage[i] >= floor { gradY1.storage[i] = -g2.gradX.storage[i] }
            var b1 = a1
            let g1 = first.backward(&b1, x: x, gradY: gradY1)
            return g1.gradWx.storage + g1.gradWy.storage + g2.gradWx.storage + g2.gradWy.storage
        }
        return (y, grads)
    }
}

extension MLPClassifier: SeededBackward {
    public func seededGradients(example x: Matrix, seeds: ([Float]) -> [[Float]]) -> (output: [Float], gradients: [[Float]]) {
        precondition(x.cols == 1, "one example at a time")
        let (pre, post) = hidden(x)
        var yM = Matrix.product(w2, post)
        yM.addColumnVector(b2.storage)
        let y = yM.storage
        let grads = seeds(y).map { v -> [Float] in
            let gy = Matrix(rows: v.count, cols: 1, storage: v)
            let gw2 = Matrix.product(gy, post, transB: .transposed)
            var gPre = Matrix.product(w2, gy, transA: .transposed)
            for i in 0..<gPre.count { gPre.storage[i] *= Self.geluDerivative(pre.storage[i]) }
            let gw1 = Matrix.product(gPre, x, transB: .transposed)
            return gw1.storage + gPre.storage + gw2.storage + v
        }
        return (y, grads)
    }
}
