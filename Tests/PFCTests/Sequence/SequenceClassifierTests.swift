import Testing
@testable import Linalg
@testable import PFC

@Suite struct SequenceClassifierTests {
    func digits() throws -> LabeledDataset {
        let all = try CSVDatasetReader.read(path: Fixtures.digitsTrain, rules: .init(requireNonNegative: true))
        return all.subset((0..<all.count).filter { all.labels[$0] < 3 })
    }

    @Test(arguments: [ModelKind.factorizedRNN, .rnn])
    func flatLayoutModelFileAndTraining(kind: ModelKind) throws {
        var arch = Architecture(kind: kind, inputDim: 8, outputDim: 3, basis: 24, iterations: 5, nonnegative: false)
        arch.sequenceLength = 8
        #expect(arch.featureCount == 64 && arch.validationProblem() == nil)
        let data = try digits()
        // The flat batch splits into the same steps as the sequence data set's batches.
        let net = NetworkFactory.make(arch, seed: 1) as! SequenceClassifier
        let (x, _) = data.batch(0..<5)
        let viaSequence = SequenceDataset(data, sequenceLength: 8).batch(0..<5).steps
        #expect(net.steps(x) == viaSequence)
        // Model files round-trip the recurrent kinds, with their sequence length and BPTT flag.
        let back = try ModelFile.decode(ModelFile.encode(net))
        #expect(back.architecture == arch && back.predict(x) == net.predict(x))
        // The ordinary trainer fits it.
        var trained: any Network = net
        var options = TrainingOptions()
        options.epochs = 8; options.batchSize = 25; options.learningRate = 3e-3; options.validationFraction = 0
        _ = Trainer(options: options).train(&trained, on: data)
        #expect(Trainer.evaluate(trained, on: data).accuracy > 0.9)
        if kind == .factorizedRNN { #expect((trained as! SequenceClassifier).codes(x)?.codes.count == 8) }
    }

    /// A delayed echo: x_t is a one-hot symbol of 3, the target at step t is the symbol of step t−1
    /// (none at step 0). Labels are per step, example after example.
    static func echo(_ n: Int, steps t: Int, seed: UInt64) -> LabeledDataset {
        var rng = SeededRandom(seed: seed)
        var f = [Float](repeating: 0, count: n * t * 3), labels = [Int]()
        for i in 0..<n {
            var previous = -1
            for s in 0..<t {
                let symbol = Int(rng.next() % 3)
                f[i * t * 3 + s * 3 + symbol] = 1
                labels.append(previous)
                previous = symbol
            }
        }
        return LabeledDataset(features: Matrix(rows: n, cols: t * 3, storage: f), labels: labels, classes: 3, labelsPerExample: t)
    }

    @Test func perStepLabelsBatchSubsetAndLoss() throws {
        let data = Self.echo(40, steps: 5, seed: 3)
        #expect(data.count == 40 && data.labels.count == 200)
        let (x, labels) = data.batch([7, 2])
        #expect(x.cols == 2 && labels == Array(data.labels[35..<40]) + Array(data.labels[10..<15]))
        let sub = data.subset([7, 2])
        #expect(sub.labelsPerExample == 5 && sub.labels == labels && sub.batch(0..<2).x == x)
        // The classifier turns B·T labels into per-step targets: its loss and gradients are the
        // recurrent model's on that sequence batch, and accuracy counts every labelled step.
        var arch = Architecture(kind: .factorizedRNN, inputDim: 3, outputDim: 3, basis: 12, iterations: 4, nonnegative: false)
        arch.sequenceLength = 5
        let net = NetworkFactory.make(arch, seed: 2) as! SequenceClassifier
        let viaNetwork = net.lossAndGradients(x: x, labels: labels)
        let seq = SequenceDataset(features: sub.features, sequenceLength: 5, stepFeatures: 3, labels: sub.labels, labelsPerStep: true, classes: 3)
        let direct = net.model.lossAndGradients(seq.batch(0..<2))
        #expect(viaNetwork.loss == direct.loss && viaNetwork.gradients == direct.gradients)
        let counts = try #require(viaNetwork.targetCounts)
        #expect(counts.total == 8)   // 2 sequences × 4 labelled steps
        let eval = net.evaluate(x: x, labels: labels)
        #expect(abs(eval.accuracy - Float(counts.correct) / 8) < 1e-6)
    }

    @Test func trainerLearnsPerStepLabels() {
        var arch = Architecture(kind: .rnn, inputDim: 3, outputDim: 3, basis: 16, nonnegative: false)
        arch.sequenceLength = 6
        var net: any Network = NetworkFactory.make(arch, seed: 4)
        let train = Self.echo(300, steps: 6, seed: 5), test = Self.echo(100, steps: 6, seed: 6)
        let before = Trainer.evaluate(net, on: test).accuracy
        var options = TrainingOptions()
        options.epochs = 25; options.batchSize = 25; options.learningRate = 1e-2; options.validationFraction = 0
        let report = Trainer(options: options).train(&net, on: train)
        let after = Trainer.evaluate(net, on: test).accuracy
        #expect(before < 0.6 && after > 0.95, "per-step accuracy \(before) → \(after)")
        #expect(report.trainAccuracy > 0.95)
    }
}
