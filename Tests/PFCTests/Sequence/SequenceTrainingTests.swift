import Testing
@testable import Linalg
@testable import PFC

@Suite struct SequenceTrainingTests {
    @Test func flatRowsBecomeSteps() {
        // Two sequences of T = 2 steps, d = 3: row i is step 0 then step 1.
        let f = Matrix([[1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12]])
        let data = SequenceDataset(features: f, sequenceLength: 2, stepFeatures: 3, labels: [1, 0])
        let b = data.batch([1, 0])
        #expect(b.steps[0] == Matrix([[7, 1], [8, 2], [9, 3]]))
        #expect(b.steps[1] == Matrix([[10, 4], [11, 5], [12, 6]]))
        #expect(b.targets == [[-1, -1], [0, 1]])
        let perStep = SequenceDataset(features: f, sequenceLength: 2, stepFeatures: 3, labels: [1, -1, 0, 2], labelsPerStep: true)
        #expect(perStep.batch([0, 1]).targets == [[1, 0], [-1, 2]])
        #expect(perStep.subset([1]).labels == [0, 2])
    }

    /// A toy task: the class is the step (of 3) at which the only non-zero input appears.
    static func toy(_ n: Int, seed: UInt64) -> SequenceDataset {
        var rng = SeededRandom(seed: seed)
        var f = Matrix(rows: n, cols: 3 * 2)
        var labels = [Int]()
        for i in 0..<n {
            let c = Int(rng.next() % 3)
            f[i, c * 2 + Int(rng.next() % 2)] = 1
            labels.append(c)
        }
        return SequenceDataset(features: f, sequenceLength: 3, stepFeatures: 2, labels: labels, classes: 3)
    }

    @Test func trainersLearnAToyTaskDeterministically() {
        let data = Self.toy(120, seed: 1)
        var opts = SequenceTrainingOptions()
        opts.epochs = 15; opts.batchSize = 20; opts.learningRate = 1e-2; opts.validationFraction = 0
        var f1 = FactorizedRNN(inputDim: 2, hidden: 12, outputDim: 3, iterations: 5, bptt: true, seed: 3)
        var f2 = f1
        let r1 = SequenceTrainer(options: opts).train(&f1, on: data)
        _ = SequenceTrainer(options: opts).train(&f2, on: data)
        #expect(f1.parameters == f2.parameters)
        #expect(r1.epochsRun == 15)
        #expect(SequenceTrainer.evaluate(f1, on: data).accuracy > 0.9)
        var v = VanillaRNN(inputDim: 2, hidden: 12, outputDim: 3, bptt: true, seed: 3)
        _ = SequenceTrainer(options: opts).train(&v, on: data)
        #expect(SequenceTrainer.evaluate(v, on: data).accuracy > 0.9)
    }

    @Test func nmfRNNLearningLowersTheLossAndKeepsWNonNegative() {
        let data = Self.toy(60, seed: 2)
        var s = NMFRNNSettings()
        s.iterations = 20
        var m = NMFFactorizedRNN(inputDim: 2, hidden: 16, outputDim: 3, settings: s, seed: 4)
        var opt: any Optimizer = RMSprop(learningRate: 0, weightDecay: 0)
        let batch = data.batch(0..<60)
        let first = m.learn(batch, optimizer: &opt).loss
        var last = first
        for _ in 0..<30 { last = m.learn(batch, optimizer: &opt).loss }
        #expect(last < first)
        #expect([m.wy, m.wh, m.wx].allSatisfy { $0.storage.allSatisfy { $0 >= s.floor } })
        #expect(m.predict(batch.steps).count == 3)
    }

    @Test func copyTaskData() {
        var rng = SeededRandom(seed: 1)
        let task = CopyTask(length: 3, padding: 2, vocab: 4)
        let b = task.batch(size: 5, rng: &rng)
        #expect(b.length == 8 && b.size == 5 && b.steps[0].rows == 6 && b.targetSteps == [5, 6, 7])
        for j in 0..<5 {
            for s in 0..<3 {
                // The symbol shown at step s is the target at step 5 + s.
                #expect(b.steps[s][b.targets[5 + s][j], j] == 1 && b.steps[s].column(j).reduce(0, +) == 1)
            }
            #expect(b.steps[3][4, j] == 1 && b.steps[4][4, j] == 1 && (5..<8).allSatisfy { b.steps[$0][5, j] == 1 })
        }
    }

    /// §2.3 / §5.5 at a small scale: NMF updates alone (no gradient anywhere) learn to recall symbols
    /// across a padding delay, judged on fresh sequences.
    @Test func nmfRNNSolvesASmallCopyTaskWithoutBackprop() {
        let task = CopyTask(length: 3, padding: 2, vocab: 4)
        var s = NMFRNNSettings()
        s.iterations = 30; s.hL1 = 0; s.hStepScale = 1; s.wStepScale = 1
        var m = NMFFactorizedRNN(inputDim: task.inputDim, hidden: 64, outputDim: task.vocab, settings: s, seed: 0)
        var opt: any Optimizer = RMSprop(learningRate: 0, weightDecay: 0)
        var trainRng = SeededRandom(seed: 2), testRng = SeededRandom(seed: 3)
        let before = task.accuracy(of: m, batches: 1, size: 200, rng: &testRng)
        for _ in 0..<150 { _ = m.learn(task.batch(size: 32, rng: &trainRng), optimizer: &opt) }
        let after = task.accuracy(of: m, batches: 1, size: 200, rng: &testRng)
        #expect(before < 0.5 && after >= 0.98, "per-symbol accuracy \(before) → \(after)")
    }
}

