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
}
