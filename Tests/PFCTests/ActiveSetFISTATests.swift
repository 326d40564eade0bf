import Testing
@testable import Linalg
@testable import PFC

/// The active-set (sparse) FISTA products against the dense ones (issue 14): the same function to
/// float rounding, forward and backward, for the block, the residual net and the factorized RNN,
/// on random and on trained weights; and finite differences through the sparse path.
@Suite struct ActiveSetFISTATests {
    /// ‖a − b‖ / ‖b‖ (Frobenius): the relative error of a whole output or gradient.
    static func relativeGap(_ a: Matrix, _ b: Matrix) -> Float {
        precondition(a.rows == b.rows && a.cols == b.cols)
        var diff: Double = 0, norm: Double = 0
        for (x, y) in zip(a.storage, b.storage) { diff += Double(x - y) * Double(x - y); norm += Double(y) * Double(y) }
        return Float((diff / max(norm, 1e-40)).squareRoot())
    }

    static func batch(d: Int, b: Int, seed: UInt64, sparsity: Float = 0.5) -> Matrix {
        var rng = SeededRandom(seed: seed)
        var x = rng.uniformMatrix(rows: d, cols: b)
        for i in 0..<x.count where rng.uniform() < sparsity { x.storage[i] = 0 } // digit-like: many zero pixels
        return x
    }

    /// A classifier trained for `steps` RMSprop steps on a small synthetic task, so its codes are as
    /// sparse as a trained model's (most entries at the floor after a few iterations).
    static func trainedBlock(d: Int, k: Int, classes: Int, iterations: Int, steps: Int, seed: UInt64) -> PFCBlock {
        let arch = Architecture(kind: .pfc, inputDim: d, outputDim: classes, basis: k, iterations: iterations)
        var net = NetworkFactory.make(arch, seed: seed) as! PFCClassifier
        var opt = RMSprop(learningRate: 3e-2, weightDecay: 0)
        let x = batch(d: d, b: 24, seed: seed + 1)
        let labels = (0..<24).map { $0 % classes }
        for _ in 0..<steps {
            let r = net.lossAndGradients(x: x, labels: labels)
            var p = net.parameters
            opt.step(&p, gradients: r.gradients)
            net.parameters = p
        }
        return net.block
    }

    struct BlockCase: Sendable, CustomTestStringConvertible {
        var trained: Bool, threads: Int, iterations: Int, normalize: Bool
        var testDescription: String { "trained \(trained) threads \(threads) N \(iterations) normalize \(normalize)" }
    }

    static let blockCases: [BlockCase] = [
        BlockCase(trained: false, threads: 1, iterations: 30, normalize: true),
        BlockCase(trained: false, threads: 2, iterations: 40, normalize: false),
        BlockCase(trained: true, threads: 1, iterations: 40, normalize: true),
        BlockCase(trained: true, threads: 2, iterations: 25, normalize: true),
    ]

    @Test(arguments: blockCases)
    func blockSparseAndDenseAgree(_ c: BlockCase) {
        var block: PFCBlock
        if c.trained {
            block = Self.trainedBlock(d: 24, k: 20, classes: 4, iterations: c.iterations, steps: 12, seed: 5)
        } else {
            var rng = SeededRandom(seed: 6)
            block = PFCBlock(wx: rng.uniformMatrix(rows: 24, cols: 20, low: 0, high: 0.5),
                             wy: rng.uniformMatrix(rows: 4, cols: 20, low: 0, high: 1), settings: FISTASettings())
        }
        block.settings.iterations = c.iterations
        block.settings.normalizeColumns = c.normalize
        let x = Self.batch(d: 24, b: 40, seed: 7)
        var rng = SeededRandom(seed: 8)
        let target = rng.uniformMatrix(rows: 4, cols: 40)

        func run(_ kernel: FISTAKernel) -> (act: PFCBlock.Activation, g: (gradWx: Matrix, gradWy: Matrix, gradX: Matrix)) {
            var b = block
            b.settings.kernel = kernel
            let chunks = c.threads
            let (hT, tape, stats) = FISTAInference.forwardWithStatistics(wx: b.wx, x: x, settings: b.settings, keepTape: true, threads: chunks)
            var act = PFCBlock.Activation(hT: hT, y: Matrix.product(b.wy, hT, transB: .transposed),
                                          reconstruction: Matrix.product(b.wx, hT, transB: .transposed), tape: tape, statistics: stats)
            let gy = Losses.mse(act.y, target).grad
            let gr = Losses.mse(act.reconstruction!, x, weight: 0.3).grad
            let g = b.backward(&act, x: x, gradY: gy, gradReconstruction: gr)
            return (act, g)
        }
        let dense = run(.dense), sparse = run(.sparse)
        #expect(dense.act.statistics.sparseFraction == 0)
        #expect(sparse.act.statistics.sparseFraction > 0.9, "sparse path ran on \(sparse.act.statistics.sparseFraction)")
        // The codes really are sparse, so the sparse path skipped work.
        #expect(sparse.act.statistics.activeFraction.last! < 0.9, "active \(sparse.act.statistics.activeFraction)")
        #expect(sparse.act.statistics.activeFraction == dense.act.statistics.activeFraction)
        #expect(Self.relativeGap(sparse.act.hT, dense.act.hT) < 1e-5)
        #expect(Self.relativeGap(sparse.act.y, dense.act.y) < 1e-5)
        #expect(Self.relativeGap(sparse.g.gradWx, dense.g.gradWx) < 1e-5, "W_x gap \(Self.relativeGap(sparse.g.gradWx, dense.g.gradWx))")
        #expect(Self.relativeGap(sparse.g.gradWy, dense.g.gradWy) < 1e-5, "W_y gap \(Self.relativeGap(sparse.g.gradWy, dense.g.gradWy))")
        #expect(Self.relativeGap(sparse.g.gradX, dense.g.gradX) < 1e-5, "x gap \(Self.relativeGap(sparse.g.gradX, dense.g.gradX))")
    }

    @Test func automaticKernelGoesSparseOnceTheCodesAreSparse() {
        // W = I (η = 1): U_t = x from the first step on, so 𝒜_t is x's support, 2 of 40 entries per
        // example at distinct columns. The first iteration starts from the floor (Z_0 = floor·1ᵀ: an
        // empty S_0); every later one has a 5 % dense operand, far below the split's break-even, so
        // `.automatic` runs every iteration sparse.
        let k = 40, b = 40
        var w = Matrix(rows: k, cols: k)
        for i in 0..<k { w[i, i] = 1 }
        var x = Matrix(rows: k, cols: b)
        for e in 0..<b { x[e, e] = 0.5; x[(e + 7) % k, e] = 0.25 }
        let s = FISTASettings(iterations: 10, normalizeColumns: false)
        let (hT, _, stats) = FISTAInference.forwardWithStatistics(wx: w, x: x, settings: s, keepTape: false, threads: 1)
        #expect(stats.sparseFraction == 1, "sparse share \(stats.sparseFraction)")
        #expect(stats.activeFraction.allSatisfy { $0 == 0.05 }, "active \(stats.activeFraction)")
        for e in 0..<b { for j in 0..<k { #expect(abs(hT[e, j] - max(x[j, e], 1e-5)) < 1e-6) } }
        #expect(FISTAStatistics.lastPrediction == stats)
        // A dense operand keeps the dense product after the first iteration: x with every entry positive.
        let full = Matrix(rows: k, cols: b, repeating: 0.3)
        let dense = FISTAInference.forwardWithStatistics(wx: w, x: full, settings: s, keepTape: false, threads: 1).statistics
        #expect(dense.sparseFraction == 0.1)
    }

    @Test func cachedGramGivesBitIdenticalCodesAndFollowsNewWeights() {
        var rng = SeededRandom(seed: 4)
        var block = PFCBlock(inputDim: 12, outputDim: 3, basis: 9, settings: FISTASettings(iterations: 15), rng: &rng)
        let x = Self.batch(d: 12, b: 5, seed: 5)
        let fresh = { (b: PFCBlock) in FISTAInference.forward(wx: b.wx, x: x, settings: b.settings, keepTape: false).hT }
        let first = block.forward(x, keepTape: false).hT, again = block.forward(x, keepTape: false).hT
        #expect(first.storage == fresh(block).storage && again.storage == first.storage)
        // New weights (as after an optimizer step): the cache must not serve the old A and η.
        block.wx.scale(by: 3)
        let moved = block.forward(x, keepTape: false).hT
        #expect(moved.storage == fresh(block).storage)
        #expect(moved.storage != first.storage)
    }

    @Test func trainingProgressCarriesTheLastPassStatistics() {
        let arch = Architecture(kind: .pfc, inputDim: 10, outputDim: 2, basis: 6, iterations: 5)
        var net: any Network = NetworkFactory.make(arch, seed: 1)
        let data = LabeledDataset(features: Self.batch(d: 20, b: 10, seed: 2), labels: (0..<20).map { $0 % 2 }, classes: 2)
        var options = TrainingOptions()
        options.epochs = 1
        options.batchSize = 10
        var seen: [FISTAStatistics?] = []
        _ = Trainer(options: options).train(&net, on: data) { p in seen.append(p.fista); return .proceed }
        #expect(!seen.isEmpty && seen.allSatisfy { $0 != nil })
        #expect(seen.allSatisfy { $0!.training && $0!.activeFraction.count == 5 && $0!.basis == 6 })
    }

    @Test func statisticsAreRecordedPerPassOnTheCallingThread() {
        var rng = SeededRandom(seed: 1)
        let block = PFCBlock(inputDim: 6, outputDim: 2, basis: 5, settings: FISTASettings(iterations: 4), rng: &rng)
        let x = Self.batch(d: 6, b: 3, seed: 2)
        let (_, passes) = FISTAStatistics.recording {
            _ = block.forward(x, keepTape: true)
            _ = block.forward(x, keepTape: false)
        }
        #expect(passes.count == 2)
        #expect(passes.map(\.training) == [true, false])
        #expect(passes[0].activeFraction.count == 4 && passes[0].examples == 3 && passes[0].basis == 5)
        // Iteration 1 of a fresh model: every entry is above the floor (research/pfc.md §1.2, h starts at the floor
        // and the first projected step moves it up wherever Xᵀ W_x is positive).
        #expect(passes[0].activeFraction[0] == 1)
        #expect(FISTAStatistics.lastTraining == passes[0])
    }

    @Test(arguments: [false, true])
    func residualNetworkSparseAndDenseAgree(trained: Bool) {
        let arch = Architecture(kind: .pfc2, inputDim: 16, outputDim: 3, basis: 14, iterations: 30, loss: .imagesLabelsMSE)
        var net = NetworkFactory.make(arch, seed: 3) as! ResidualPFCNetwork
        let x = Self.batch(d: 16, b: 20, seed: 4)
        let labels = (0..<20).map { $0 % 3 }
        if trained {
            var opt = RMSprop(learningRate: 3e-2, weightDecay: 0)
            for _ in 0..<10 {
                let r = net.lossAndGradients(x: x, labels: labels)
                var p = net.parameters
                opt.step(&p, gradients: r.gradients)
                net.parameters = p
            }
        }
        func run(_ kernel: FISTAKernel) -> (LossAndGradients, [FISTAStatistics]) {
            var n = net
            n.first.settings.kernel = kernel
            n.second.settings.kernel = kernel
            let (r, passes) = FISTAStatistics.recording { n.lossAndGradients(x: x, labels: labels) }
            return (r, passes)
        }
        let (dense, _) = run(.dense)
        let (sparse, passes) = run(.sparse)
        #expect(passes.count == 2 && passes.allSatisfy { $0.sparseFraction > 0.9 })
        #expect(abs(sparse.loss - dense.loss) <= 1e-5 * abs(dense.loss))
        #expect(Self.relativeGap(sparse.outputs, dense.outputs) < 1e-5)
        for (i, (gs, gd)) in zip(sparse.gradients, dense.gradients).enumerated() {
            #expect(Self.relativeGap(gs, gd) < 1e-5, "gradient \(i) gap \(Self.relativeGap(gs, gd))")
        }
    }

    @Test(arguments: [(true, true), (false, false), (true, false)])
    func factorizedRNNSparseAndDenseAgree(bptt: Bool, nonnegative: Bool) {
        var rnn = FactorizedRNN(inputDim: 6, hidden: 12, outputDim: 3, iterations: 20, nonnegative: nonnegative, bptt: bptt, seed: 1)
        var rng = SeededRandom(seed: 2)
        rnn.parameters = rnn.parameters.map {
            Parameter(name: $0.name, value: rng.uniformMatrix(rows: $0.value.rows, cols: $0.value.cols,
                                                              low: nonnegative ? 0.01 : -0.3, high: 0.4),
                      nonnegative: $0.nonnegative)
        }
        let batch = SequenceGradientTests.batch(t: 4, d: 6, b: 18, classes: 3, perStep: true, seed: 3)
        func run(_ kernel: FISTAKernel) -> (SequenceGradients, [FISTAStatistics]) {
            var m = rnn
            m.settings.kernel = kernel
            let (r, passes) = FISTAStatistics.recording { m.lossAndGradients(batch) }
            return (r, passes)
        }
        let (dense, _) = run(.dense)
        let (sparse, passes) = run(.sparse)
        #expect(passes.count == 4 && passes.allSatisfy { $0.sparseFraction > 0.9 })
        #expect(passes.contains { $0.activeFraction.last! < 0.9 }, "active \(passes.map { $0.activeFraction.last! })")
        #expect(abs(sparse.loss - dense.loss) <= 1e-5 * abs(dense.loss))
        for (so, do_) in zip(sparse.outputs, dense.outputs) { #expect(Self.relativeGap(so, do_) < 1e-5) }
        for (i, (gs, gd)) in zip(sparse.gradients, dense.gradients).enumerated() {
            #expect(Self.relativeGap(gs, gd) < 1e-5, "gradient \(i) gap \(Self.relativeGap(gs, gd))")
        }
    }

    // MARK: Finite differences through the sparse path (the cases of GradientTests and SequenceGradientTests)

    @Test(arguments: GradientTests.blockCases)
    func blockGradientThroughSparsePathMatchesFiniteDifferences(settings: FISTASettings, wxHigh: Float) {
        var rng = SeededRandom(seed: 3)
        var s = settings
        s.kernel = .sparse
        var block = PFCBlock(wx: rng.uniformMatrix(rows: 9, cols: 6, low: wxHigh / 12, high: wxHigh),
                             wy: rng.uniformMatrix(rows: 4, cols: 6, low: 0.05, high: 1), settings: s)
        let x = GradientTests().batch(d: 9, b: 5, seed: 4)
        let target = rng.uniformMatrix(rows: 4, cols: 5)
        freeze(&block, on: x)
        func loss(_ wx: Matrix, _ wy: Matrix, _ x: Matrix) -> Float {
            var b = block
            b.wx = wx; b.wy = wy
            let a = b.forward(x, keepTape: false, reconstruct: true)
            return Losses.mse(a.y, target).loss + Losses.mse(a.reconstruction!, x, weight: 0.3).loss
        }
        var act = block.forward(x, keepTape: true, reconstruct: true)
        if settings.iterations > 1 { #expect(act.statistics.sparseFraction > 0) }
        let gy = Losses.mse(act.y, target).grad
        let gr = Losses.mse(act.reconstruction!, x, weight: 0.3).grad
        var g = block.backward(&act, x: x, gradY: gy, gradReconstruction: gr)
        g.gradX.add(gr, scaledBy: -1)
        var check = GradientCheck()
        let err = check.worstRelativeError(parameters: [block.wx, block.wy, x], gradients: [g.gradWx, g.gradWy, g.gradX]) {
            loss($0[0], $0[1], $0[2])
        }
        #expect(err < 2e-2, "worst relative error \(err)")
    }

    @Test(arguments: LossKind.allCases)
    func residualGradientThroughSparsePathMatchesFiniteDifferences(loss: LossKind) {
        let arch = Architecture(kind: .pfc2, inputDim: 7, outputDim: 3, basis: 5, iterations: 8, loss: loss)
        let err = GradientTests().checkNetwork(arch) { net, x in
            var r = net as! ResidualPFCNetwork
            r.first.settings.kernel = .sparse
            r.second.settings.kernel = .sparse
            freeze(&r.first, on: x)
            let y1 = r.first.forward(x, keepTape: false).y
            freeze(&r.second, on: r.residual(x, y1))
            net = r
        }
        #expect(err < 2e-2, "worst relative error \(err)")
    }

    @Test(arguments: SequenceGradientTests.factorizedCases)
    func factorizedRNNGradientThroughSparsePathMatchesFiniteDifferences(_ c: SequenceGradientTests.FactorizedCase) {
        var rnn = FactorizedRNN(inputDim: 4, hidden: 5, outputDim: 3, iterations: c.iterations, nonnegative: c.nonnegative,
                                bptt: c.bptt, seed: 1)
        rnn.settings.kernel = .sparse
        var rng = SeededRandom(seed: 2)
        rnn.parameters = rnn.parameters.map {
            let lo: Float = c.nonnegative ? c.scale * 0.05 : -c.scale
            return Parameter(name: $0.name, value: rng.uniformMatrix(rows: $0.value.rows, cols: $0.value.cols, low: lo, high: c.scale),
                             nonnegative: $0.nonnegative)
        }
        let batch = SequenceGradientTests.batch(t: 4, d: 4, b: 3, classes: 3, perStep: c.perStep, seed: 3)
        let probe = rnn.run(batch.steps, keepTape: true)
        #expect(probe.tapes.allSatisfy { $0.statistics.sparseFraction > 0 })
        rnn.frozen = probe.stopGradients
        rnn.detached = [Matrix(rows: 3, cols: 5)] + probe.codes.dropLast()
        let err = SequenceGradientTests.check(rnn, batch)
        #expect(err < 2e-2, "worst relative error \(err)")
    }
}

/// The factored dense product (Z W_xᵀ) W_x that `.automatic` takes for K > 2d (issue 14).
@Suite struct FactoredProductTests {
    @Test func automaticTakesTheFactoredFormForWideBasesAndAgreesWithTheGramForm() {
        // d = 8, K = 40: the factored product costs 2d/K = 0.4 of the Gram one.
        var rng = SeededRandom(seed: 21)
        let block = PFCBlock(wx: rng.uniformMatrix(rows: 8, cols: 40, low: 0, high: 0.5),
                             wy: rng.uniformMatrix(rows: 3, cols: 40, low: 0, high: 1), settings: FISTASettings(iterations: 30))
        let x = ActiveSetFISTATests.batch(d: 8, b: 36, seed: 22, sparsity: 0.2)
        let target = rng.uniformMatrix(rows: 3, cols: 36)
        func run(_ kernel: FISTAKernel, threads: Int) -> (hT: Matrix, gWx: Matrix, gWy: Matrix, gX: Matrix) {
            var b = block
            b.settings.kernel = kernel
            let (hT, tape, stats) = FISTAInference.forwardWithStatistics(wx: b.wx, x: x, settings: b.settings, keepTape: true, threads: threads)
            var act = PFCBlock.Activation(hT: hT, y: Matrix.product(b.wy, hT, transB: .transposed),
                                          reconstruction: Matrix.product(b.wx, hT, transB: .transposed), tape: tape, statistics: stats)
            let g = b.backward(&act, x: x, gradY: Losses.mse(act.y, target).grad, gradReconstruction: Losses.mse(act.reconstruction!, x).grad)
            return (hT, g.gradWx, g.gradWy, g.gradX)
        }
        for threads in [1, 2] {
            let f = run(.automatic, threads: threads), g = run(.dense, threads: threads)
            #expect(f.hT.storage != g.hT.storage, "the factored form sums in another order; equal bits mean it did not run")
            #expect(ActiveSetFISTATests.relativeGap(f.hT, g.hT) < 1e-5)
            #expect(ActiveSetFISTATests.relativeGap(f.gWx, g.gWx) < 1e-5, "W_x gap \(ActiveSetFISTATests.relativeGap(f.gWx, g.gWx))")
            #expect(ActiveSetFISTATests.relativeGap(f.gWy, g.gWy) < 1e-5)
            #expect(ActiveSetFISTATests.relativeGap(f.gX, g.gX) < 1e-5, "x gap \(ActiveSetFISTATests.relativeGap(f.gX, g.gX))")
        }
    }

    @Test func choiceFollowsTheCosts() {
        // 4 rows × K = 10, every row lists every column: the split costs as much as the Gram product.
        let k = 10, rows = 4
        let plan = ActiveSetProduct(rows: rows, k: k)
        var idx = [Int32](repeating: 0, count: rows * k), cnt = [Int32](repeating: Int32(k), count: rows)
        for r in 0..<rows { for j in 0..<k { idx[r * k + j] = Int32(j) } }
        let full = idx.withUnsafeBufferPointer { ip in cnt.withUnsafeBufferPointer { cp in
            (FISTAInference.choose(.automatic, plan, counts: cp.baseAddress!, indices: ip.baseAddress!, factoredCost: 0.5),
             FISTAInference.choose(.automatic, plan, counts: cp.baseAddress!, indices: ip.baseAddress!, factoredCost: 1.5),
             FISTAInference.choose(.dense, plan, counts: cp.baseAddress!, indices: ip.baseAddress!, factoredCost: 0.5),
             FISTAInference.choose(.sparse, plan, counts: cp.baseAddress!, indices: ip.baseAddress!, factoredCost: 0.5))
        } }
        #expect(full.0 == .factored && full.1 == .gram && full.2 == .gram && full.3 == .sparse)
        // One entry per row: the split is far cheaper than either dense form.
        cnt = [Int32](repeating: 1, count: rows)
        let few = idx.withUnsafeBufferPointer { ip in cnt.withUnsafeBufferPointer { cp in
            FISTAInference.choose(.automatic, plan, counts: cp.baseAddress!, indices: ip.baseAddress!, factoredCost: 0.5)
        } }
        #expect(few == .sparse)
    }
}
