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
}
