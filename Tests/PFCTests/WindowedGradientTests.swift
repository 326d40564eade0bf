import Testing
@testable import Linalg
@testable import PFC

/// The sliding window's gradients (research/pfc.md §3): a backward pass told the window's columns
/// forms ∂L/∂W_x on those columns only. They must equal the complete gradient's columns to float
/// rounding, be zero elsewhere, and leave ∂L/∂W_y and ∂L/∂x complete; for dense and sparse products,
/// random and trained weights, the one-block classifier and the residual net, and windows at either
/// end of the basis or reaching past it (clamped, never a trap).
@Suite struct WindowedGradientTests {
    /// max |a − b| over the entries, relative to max |b|.
    static func relativeMaxGap(_ a: ArraySlice<Float>, _ b: ArraySlice<Float>) -> Float {
        var gap: Float = 0, scale: Float = 0
        for (x, y) in zip(a, b) { gap = max(gap, abs(x - y)); scale = max(scale, abs(y)) }
        return gap / max(scale, 1e-30)
    }

    /// Columns `cols` of a row-major matrix, row after row.
    static func columns(_ m: Matrix, _ cols: Range<Int>) -> ArraySlice<Float> {
        ArraySlice((0..<m.rows).flatMap { i in cols.map { m.storage[i * m.cols + $0] } })
    }

    /// Checks `windowed` against `full` for the parameters of a block (W_x at `wx`, W_y at `wx + 1`).
    static func expectWindowed(_ windowed: LossAndGradients, _ full: LossAndGradients, wx: Int, window: Range<Int>, k: Int) {
        let cols = window.clamped(to: 0..<k)
        #expect(windowed.loss == full.loss)
        let gw = windowed.gradients[wx], gf = full.gradients[wx]
        #expect(relativeMaxGap(columns(gw, cols), columns(gf, cols)) < 1e-5, "W_x on the window")
        let outside = (0..<k).filter { !cols.contains($0) }
        #expect(outside.allSatisfy { j in (0..<gw.rows).allSatisfy { gw.storage[$0 * k + j] == 0 } }, "W_x off the window is zero")
        #expect(relativeMaxGap(windowed.gradients[wx + 1].storage[...], full.gradients[wx + 1].storage[...]) < 1e-6, "W_y complete")
        if !cols.isEmpty { #expect(columns(gf, cols).contains { $0 != 0 }, "the window's gradient is not trivially zero") }
    }

    struct Case: Sendable, CustomTestStringConvertible {
        var kernel: FISTAKernel, trained: Bool, window: Range<Int>
        var testDescription: String { "\(kernel) trained \(trained) window \(window)" }
    }

    static let k = 24
    static let cases: [Case] = [
        Case(kernel: .dense, trained: false, window: 0..<5),
        Case(kernel: .sparse, trained: false, window: 9..<14),
        Case(kernel: .dense, trained: true, window: 19..<24),
        Case(kernel: .sparse, trained: true, window: 3..<9),
        Case(kernel: .automatic, trained: true, window: 21..<30), // past K: clamped to 21..<24
        Case(kernel: .sparse, trained: true, window: 0..<24),     // the whole basis
    ]

    static func trained(_ net: PFCClassifier, x: Matrix, labels: [Int], steps: Int) -> PFCClassifier {
        var net = net
        var opt = RMSprop(learningRate: 3e-2, weightDecay: 0)
        for _ in 0..<steps {
            let r = net.lossAndGradients(x: x, labels: labels)
            var p = net.parameters
            opt.step(&p, gradients: r.gradients)
            net.parameters = p
        }
        return net
    }

    @Test(arguments: cases)
    func classifierWindowMatchesFullGradient(_ c: Case) {
        let arch = Architecture(kind: .pfc, inputDim: 20, outputDim: 4, basis: Self.k, iterations: 30,
                                loss: .imagesLabelsMSE, labelLossWeight: 0.5)
        var net = NetworkFactory.make(arch, seed: 11) as! PFCClassifier
        let x = ActiveSetFISTATests.batch(d: 20, b: 30, seed: 12)
        let labels = (0..<30).map { $0 % 4 }
        if c.trained { net = Self.trained(net, x: x, labels: labels, steps: 10) }
        net.block.settings.kernel = c.kernel
        let full = net.lossAndGradients(x: x, labels: labels)
        let windowed = net.lossAndGradients(x: x, labels: labels, gradientColumns: c.window)
        Self.expectWindowed(windowed, full, wx: 0, window: c.window, k: Self.k)
    }

    @Test(arguments: [FISTAKernel.dense, .sparse])
    func residualWindowMatchesFullGradient(_ kernel: FISTAKernel) {
        let arch = Architecture(kind: .pfc2, inputDim: 16, outputDim: 3, basis: Self.k, iterations: 25,
                                loss: .imagesLabelsMSE, labelLossWeight: 0.5)
        var net = NetworkFactory.make(arch, seed: 21) as! ResidualPFCNetwork
        net.first.settings.kernel = kernel
        net.second.settings.kernel = kernel
        let x = ActiveSetFISTATests.batch(d: 16, b: 20, seed: 22)
        let labels = (0..<20).map { $0 % 3 }
        let window = 7..<13
        let full = net.lossAndGradients(x: x, labels: labels)
        let windowed = net.lossAndGradients(x: x, labels: labels, gradientColumns: window)
        Self.expectWindowed(windowed, full, wx: 0, window: window, k: Self.k)
        Self.expectWindowed(windowed, full, wx: 2, window: window, k: Self.k)
    }

    /// An empty window (or one wholly past K) forms no W_x gradient and still returns the rest.
    @Test func emptyWindowLeavesWxZero() {
        let arch = Architecture(kind: .pfc, inputDim: 12, outputDim: 3, basis: 10, iterations: 20)
        let net = NetworkFactory.make(arch, seed: 31) as! PFCClassifier
        let x = ActiveSetFISTATests.batch(d: 12, b: 8, seed: 32)
        let labels = (0..<8).map { $0 % 3 }
        let full = net.lossAndGradients(x: x, labels: labels)
        for window in [4..<4, 40..<55] {
            let r = net.lossAndGradients(x: x, labels: labels, gradientColumns: window)
            #expect(r.gradients[0].storage.allSatisfy { $0 == 0 })
            #expect(r.gradients[1].storage == full.gradients[1].storage)
        }
    }
}
