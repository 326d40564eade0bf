import Testing
@testable import Linalg
@testable import PFC

@Suite struct SlidingWindowOptimizerTests {
    /// One parameter `rows × k` with values `base + 0.1·(i·k + j)`, and a gradient of all `g`.
    func setup(rows: Int = 2, k: Int, base: Float = 0.5, g: Float = 0.3) -> ([Parameter], [Matrix]) {
        let v = Matrix(rows: rows, cols: k, storage: (0..<(rows * k)).map { base + 0.1 * Float($0) })
        return ([Parameter(name: "wx", value: v, nonnegative: true)], [Matrix(rows: rows, cols: k, repeating: g)])
    }

    @Test func windowArithmeticMatchesThePaper() {
        // w = 50, s = 2.5: batch j trains [⌊2.5j⌋, ⌊2.5j + 50⌋) (research/pfc.md §3, deterministic mode).
        var opt = SlidingWindowOptimizer(learningRate: 1e-3, weightDecay: 0, width: 50, slide: 2.5)
        for j in 0..<1020 {
            let expected = Int((2.5 * Double(j)).rounded(.down))..<Int((2.5 * Double(j) + 50).rounded(.down))
            #expect(opt.window == expected)
            opt.stepWithoutUpdate()
        }
        #expect(SlidingWindowOptimizer.window(start: 0, width: 50, slide: 2.5, step: 500) == 1250..<1300)
        #expect(SlidingWindowOptimizer.window(start: 0, width: 50, slide: 2.5, step: 799) == 1997..<2047)
        // Split MNIST: w = 15, s = 0.25 from a fractional start.
        #expect(SlidingWindowOptimizer.window(start: 3.75, width: 15, slide: 0.25, step: 1) == 4..<19)
        #expect(SlidingWindowOptimizer.window(start: 3.5, width: 15, slide: 0.25, step: 0) == 3..<18)
        opt.reset()
        #expect(opt.window == 0..<50 && opt.position == 0)
    }

    @Test func capacityIsTheLastWindowsRightBorder() throws {
        // ⌊start + s·(S−1) + w⌋
        #expect(SlidingWindowOptimizer.requiredBasis(start: 0, width: 50, slide: 2.5, steps: 1020) == 2597)
        #expect(SlidingWindowOptimizer.requiredBasis(start: 0, width: 15, slide: 0.25, steps: 1) == 15)
        #expect(SlidingWindowOptimizer.requiredBasis(start: 1.5, width: 4, slide: 0.5, steps: 5) == 7) // p = 3.5: [3, 7)
        #expect(SlidingWindowOptimizer.requiredBasis(start: 1.5, width: 4, slide: 0.5, steps: 6) == 8) // p = 4: [4, 8)
        #expect(SlidingWindowOptimizer.requiredBasis(start: 0, width: 4, slide: 1, steps: 0) == 0)
        // The optimizer runs exactly that many steps on that K and refuses the next one, changing nothing.
        var opt = SlidingWindowOptimizer(learningRate: 0.01, weightDecay: 0, width: 4, slide: 0.5, start: 1.5)
        var (p, g) = setup(k: 7)
        for _ in 0..<5 { #expect(throws: Never.self) { try opt.stepChecked(&p, gradients: g) } }
        let before = p
        #expect(throws: SlidingWindowError.capacityExceeded(needed: 8, available: 7)) { try opt.stepChecked(&p, gradients: g) }
        #expect(p == before && opt.stepsSinceReset == 5)
        opt.step(&p, gradients: g) // the protocol entry keeps the error instead of crashing
        #expect(opt.lastError == .capacityExceeded(needed: 8, available: 7) && p == before)
    }

    @Test func handComputedStep() throws {
        // p = 1.5, w = 2, s = 0.5: the first step trains [1, 3), the second [2, 4).
        var opt = SlidingWindowOptimizer(learningRate: 0.1, weightDecay: 0.01, width: 2, slide: 0.5, start: 1.5)
        var p = [Parameter(name: "w", value: Matrix([[1, 1, 1, 1, 1]]), nonnegative: false)]
        let g = [Matrix([[0.5, 0.5, 0.5, -4, 0.5]])]
        #expect(try opt.stepChecked(&p, gradients: g) == 1..<3)
        // ms = 0.01·0.25 = 0.0025; step = 0.1·0.5/0.05 = 1 → 0; decay ×0.99 → 0.
        let first = p[0].value.storage, ms = opt.meanSquare[0]
        #expect(first[0] == 1 && abs(first[1]) < 1e-6 && abs(first[2]) < 1e-6 && first[3] == 1 && first[4] == 1)
        #expect(ms[0] == 0 && abs(ms[1] - 0.0025) < 1e-8 && abs(ms[2] - 0.0025) < 1e-8 && ms[3] == 0 && ms[4] == 0)
        #expect(try opt.stepChecked(&p, gradients: g) == 2..<4)
        // column 2: ms = 0.99·0.0025 + 0.0025; column 3: ms = 0.16, step = 0.1·(−4)/0.4 = −1 → 2 → ×0.99.
        let s2 = 0.1 * 0.5 / (Float(0.99 * 0.0025 + 0.0025).squareRoot() + 1e-8)
        #expect(abs(p[0].value.storage[2] - (0 - s2) * 0.99) < 1e-6)
        #expect(abs(p[0].value.storage[3] - 1.98) < 1e-6)
        #expect(p[0].value.storage[0] == 1 && p[0].value.storage[1] == first[1] && p[0].value.storage[4] == 1)
    }

    @Test func outsideTheWindowNothingChangesAndStatisticsStayZero() throws {
        var opt = SlidingWindowOptimizer(learningRate: 0.05, weightDecay: 0.01, width: 3, slide: 1.25)
        var (p, g) = setup(rows: 3, k: 12, g: -0.3)
        p.append(Parameter(name: "wy", value: Matrix(rows: 2, cols: 12, repeating: 0.2), nonnegative: true))
        g.append(Matrix(rows: 2, cols: 12, repeating: -0.1))
        let initial = p
        var trained = Set<Int>()
        for _ in 0..<4 {
            let before = p
            let win = try opt.stepChecked(&p, gradients: g)
            trained.formUnion(win)
            for (a, b) in zip(before, p) {
                let k = a.value.cols
                for i in 0..<a.value.rows {
                    for c in 0..<k where !win.contains(c) { #expect(a.value[i, c].bitPattern == b.value[i, c].bitPattern) }
                    for c in win { #expect(a.value[i, c] != b.value[i, c]) }  // the same columns in every matrix
                }
            }
        }
        #expect(trained == Set(0..<6)) // windows [0,3) [1,4) [2,5) [3,6): p = 0, 1.25, 2.5, 3.75
        for (q, ms) in opt.meanSquare.enumerated() {
            let k = p[q].value.cols
            for i in 0..<p[q].value.rows {
                for c in 0..<k {
                    #expect((ms[i * k + c] == 0) == !trained.contains(c))
                    if !trained.contains(c) { #expect(p[q].value[i, c] == initial[q].value[i, c]) }
                }
            }
        }
    }

    @Test func clampCoversEveryColumn() throws {
        var opt = SlidingWindowOptimizer(learningRate: 0.01, weightDecay: 0, width: 1, slide: 1)
        var p = [Parameter(name: "w", value: Matrix([[0.5, -3, 0, 0.2]]), nonnegative: true)]
        try opt.stepChecked(&p, gradients: [Matrix([[0, 0, 0, 0]])])
        // Window [0,1) saw g = 0; columns 1 and 2 are below the floor and get clamped although outside.
        #expect(p[0].value.storage == [0.5, nonnegativeFloor, nonnegativeFloor, 0.2])
        var signed = [Parameter(name: "w", value: Matrix([[0.5, -3]]), nonnegative: false)]
        try opt.stepChecked(&signed, gradients: [Matrix([[0, 0]])])
        #expect(signed[0].value.storage == [0.5, -3])
    }

    @Test func stepWithoutUpdateOnlyMovesTheWindow() throws {
        var opt = SlidingWindowOptimizer(learningRate: 0.1, weightDecay: 0.1, width: 2, slide: 2)
        var (p, g) = setup(k: 8)
        let before = p
        opt.stepWithoutUpdate()
        #expect(opt.window == 2..<4 && opt.meanSquare.isEmpty)
        #expect(try opt.stepChecked(&p, gradients: g) == 2..<4)
        #expect(p[0].value.columns(0..<2) == before[0].value.columns(0..<2))
    }

    @Test func rejectsParametersWithoutASharedBasis() {
        var opt = SlidingWindowOptimizer(learningRate: 0.1, weightDecay: 0, width: 1, slide: 1)
        var p = [Parameter(name: "a", value: Matrix(rows: 2, cols: 3), nonnegative: false),
                 Parameter(name: "b", value: Matrix(rows: 2, cols: 1), nonnegative: false)]
        #expect(throws: SlidingWindowError.self) { try opt.stepChecked(&p, gradients: p.map(\.value)) }
    }
}
