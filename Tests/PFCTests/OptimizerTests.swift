import Foundation
import Testing
@testable import Linalg
@testable import PFC

@Suite struct OptimizerTests {
    func param(_ v: [Float], nonnegative: Bool) -> [Parameter] {
        [Parameter(name: "w", value: Matrix(rows: 1, cols: v.count, storage: v), nonnegative: nonnegative)]
    }

    @Test func rmspropMatchesHandComputedSteps() {
        // ms ← 0.99·ms + 0.01·g²;  p ← p − lr·g/(√ms + 1e-8);  p ← p − wd·p   (research/pfc.md §1.3)
        var opt = RMSprop(learningRate: 0.1, weightDecay: 0.01)
        var p = param([1.0, -2.0], nonnegative: false)
        opt.step(&p, gradients: [Matrix(rows: 1, cols: 2, storage: [0.5, -4])])
        // ms = [0.0025, 0.16]; step = 0.1·g/√ms = [1, -1]; p = [0, -1]; decay: ×0.99 → [0, -0.99]
        #expect(abs(p[0].value.storage[0] - 0) < 1e-6)
        #expect(abs(p[0].value.storage[1] - (-0.99)) < 1e-6)
        opt.step(&p, gradients: [Matrix(rows: 1, cols: 2, storage: [0.5, 2])])
        // ms = [0.99·0.0025 + 0.0025, 0.99·0.16 + 0.04] = [0.004975, 0.1984]
        let s0 = 0.1 * 0.5 / (Float(0.004975).squareRoot() + 1e-8)
        let s1 = 0.1 * 2 / (Float(0.1984).squareRoot() + 1e-8)
        #expect(abs(p[0].value.storage[0] - (0 - s0) * 0.99) < 1e-5)
        #expect(abs(p[0].value.storage[1] - (-0.99 - s1) * 0.99) < 1e-5)
    }

    @Test func nonnegativeParametersAreClippedToTheFloor() {
        var opt = RMSprop(learningRate: 0.1, weightDecay: 0)
        var p = param([0.05, 0.5], nonnegative: true)
        opt.step(&p, gradients: [Matrix(rows: 1, cols: 2, storage: [1, 1])])
        // step = 0.1/√0.01 = 1 → [−0.95, −0.5] → clipped to 1e-5
        #expect(p[0].value.storage == [1e-5, 1e-5])
    }

    @Test func adamMatchesHandComputedSteps() {
        var opt = Adam(learningRate: 0.01, weightDecay: 0)
        var p = param([1.0], nonnegative: false)
        opt.step(&p, gradients: [Matrix(rows: 1, cols: 1, storage: [2])])
        // m̂ = g, v̂ = g²: the first step is lr·sign(g)
        #expect(abs(p[0].value.storage[0] - 0.99) < 1e-6)
        opt.step(&p, gradients: [Matrix(rows: 1, cols: 1, storage: [-1])])
        let m = 0.9 * 0.1 * 2 + 0.1 * -1.0, v = 0.999 * 0.001 * 4 + 0.001 * 1.0
        let mh = m / (1 - 0.81), vh = v / (1 - 0.999 * 0.999)
        let expected = 0.99 - 0.01 * mh / (vh.squareRoot() + 1e-8)
        #expect(abs(Double(p[0].value.storage[0]) - expected) < 1e-6)
    }
}
