import Testing
@testable import Linalg
@testable import PFC

@Suite struct GradientTests {
    /// A small non-negative batch: d×B in [0, 1).
    func batch(d: Int, b: Int, seed: UInt64) -> Matrix {
        var r = SeededRandom(seed: seed)
        return r.uniformMatrix(rows: d, cols: b)
    }

    /// (settings, upper bound of W_x's entries). Small W_x makes h exceed max(x), so the stop-gradient
    /// scale path is active; larger W_x makes projected steps fall below the floor (the clamp path).
    static let blockCases: [(FISTASettings, Float)] = [
        (FISTASettings(iterations: 1), 0.6), (FISTASettings(iterations: 7), 0.6), (FISTASettings(iterations: 25), 0.6),
        (FISTASettings(iterations: 12, normalizeColumns: false), 0.6), (FISTASettings(iterations: 15), 0.03),
    ]

    @Test(arguments: blockCases)
    func blockGradientMatchesFiniteDifferences(settings: FISTASettings, wxHigh: Float) {
        var rng = SeededRandom(seed: 3)
        // W_y of order 0.1–1 keeps the outputs O(1), so Float finite differences resolve the gradient.
        var block = PFCBlock(wx: rng.uniformMatrix(rows: 9, cols: 6, low: wxHigh / 12, high: wxHigh),
                             wy: rng.uniformMatrix(rows: 4, cols: 6, low: 0.05, high: 1), settings: settings)
        let x = batch(d: 9, b: 5, seed: 4)
        let target = rng.uniformMatrix(rows: 4, cols: 5)
        freeze(&block, on: x)

        // The cases between them exercise the scale path and the clamp path.
        let probe = block.forward(x, keepTape: true)
        if wxHigh < 0.1 { #expect(probe.stopGradients!.scales.contains { $0 < 1 }) }
        if settings.iterations >= 12 && wxHigh > 0.1 { #expect(probe.tape!.u.contains { $0 < settings.floor }) }

        // L = MSE(y, target) + 0.3·MSE(W_x h, x)  (exercises ∂y, ∂reconstruction and ∂x).
        func loss(_ wx: Matrix, _ wy: Matrix, _ x: Matrix) -> Float {
            var b = block
            b.wx = wx; b.wy = wy
            let a = b.forward(x, keepTape: false, reconstruct: true)
            return Losses.mse(a.y, target).loss + Losses.mse(a.reconstruction!, x, weight: 0.3).loss
        }
        var act = block.forward(x, keepTape: true, reconstruct: true)
        let gy = Losses.mse(act.y, target).grad
        let gr = Losses.mse(act.reconstruction!, x, weight: 0.3).grad
        var g = block.backward(&act, x: x, gradY: gy, gradReconstruction: gr)
        // x is also the reconstruction's target: add that direct term for the ∂x check.
        g.gradX.add(gr, scaledBy: -1)

        var check = GradientCheck()
        let err = check.worstRelativeError(parameters: [block.wx, block.wy, x], gradients: [g.gradWx, g.gradWy, g.gradX]) {
            loss($0[0], $0[1], $0[2])
        }
        #expect(err < 2e-2, "worst relative error \(err)")
    }

    func checkNetwork(_ arch: Architecture, freezeBlocks: (inout any Network, Matrix) -> Void) -> Float {
        var net = NetworkFactory.make(arch, seed: 11)
        if arch.kind != .mlp {
            // Weights of order 0.1–1 keep the outputs O(1), so Float finite differences resolve the gradient.
            var rng = SeededRandom(seed: 13)
            net.parameters = net.parameters.map {
                Parameter(name: $0.name, value: rng.uniformMatrix(rows: $0.value.rows, cols: $0.value.cols, low: 0.02, high: 0.4),
                          nonnegative: true)
            }
        }
        let x = batch(d: arch.inputDim, b: 6, seed: 12)
        let labels = (0..<6).map { $0 % arch.outputDim }
        freezeBlocks(&net, x)
        let r = net.lossAndGradients(x: x, labels: labels)
        #expect(r.loss.isFinite && r.loss > 0)
        var check = GradientCheck()
        let base = net
        return check.worstRelativeError(parameters: net.parameters.map(\.value), gradients: r.gradients) { values in
            var n = base
            n.parameters = zip(base.parameters, values).map { Parameter(name: $0.name, value: $1, nonnegative: $0.nonnegative) }
            return n.lossAndGradients(x: x, labels: labels).loss
        }
    }

    @Test(arguments: LossKind.allCases)
    func pfcClassifierGradient(loss: LossKind) {
        let arch = Architecture(kind: .pfc, inputDim: 8, outputDim: 3, basis: 5, iterations: 10, loss: loss)
        let err = checkNetwork(arch) { net, x in
            var c = net as! PFCClassifier
            freeze(&c.block, on: x)
            net = c
        }
        #expect(err < 2e-2, "worst relative error \(err)")
    }

    @Test(arguments: LossKind.allCases)
    func residualNetworkGradient(loss: LossKind) {
        let arch = Architecture(kind: .pfc2, inputDim: 7, outputDim: 3, basis: 5, iterations: 8, loss: loss)
        let err = checkNetwork(arch) { net, x in
            var r = net as! ResidualPFCNetwork
            freeze(&r.first, on: x)
            let y1 = r.first.forward(x, keepTape: false).y
            freeze(&r.second, on: r.residual(x, y1))
            net = r
        }
        #expect(err < 2e-2, "worst relative error \(err)")
    }

    @Test(arguments: [LossKind.labelsMSE, .crossEntropy])
    func mlpGradient(loss: LossKind) {
        let arch = Architecture(kind: .mlp, inputDim: 6, outputDim: 4, basis: 9, loss: loss)
        let err = checkNetwork(arch) { _, _ in }
        #expect(err < 1e-2, "worst relative error \(err)")
    }

    @Test func residualIsClampedAndSkipsGradientBelowFloor() {
        // Where x − y1 < floor, r is the constant floor: the first block gets no gradient from there.
        var rng = SeededRandom(seed: 5)
        var net = ResidualPFCNetwork(architecture: Architecture(kind: .pfc2, inputDim: 4, outputDim: 2, basis: 3, iterations: 5), rng: &rng)
        net.first.wy = Matrix(rows: 4, cols: 3, repeating: 10) // y1 ≫ x: r is clamped everywhere
        let x = batch(d: 4, b: 3, seed: 6)
        let r = net.lossAndGradients(x: x, labels: [0, 1, 0])
        #expect(r.gradients[0].storage.allSatisfy { $0 == 0 })
        #expect(r.gradients[1].storage.allSatisfy { $0 == 0 })
        #expect(r.gradients[3].storage.contains { $0 != 0 })
    }
}
