import Testing
@testable import Linalg
@testable import PFC

@Suite struct TrainingTests {
    @Test func pfcLearnsDigits() throws {
        // Small shapes keep this fast in a debug build; the full K = 300, N = 100 run is in the README.
        let train = try CSVDatasetReader.read(path: Fixtures.digitsTrain, rules: .init(requireNonNegative: true))
        let test = try CSVDatasetReader.read(path: Fixtures.digitsTest, rules: .init(requireNonNegative: true, classes: 10))
        var net = NetworkFactory.make(Architecture(kind: .pfc, inputDim: 64, outputDim: 10, basis: 100, iterations: 20), seed: 0)
        var options = TrainingOptions()
        options.epochs = 8
        options.learningRate = 3e-3
        var reports = [TrainingProgress]()
        let report = Trainer(options: options).train(&net, on: train) { reports.append($0); return .proceed }
        let acc = Trainer.evaluate(net, on: test).accuracy
        #expect(acc >= 0.9, "test accuracy \(acc)")
        #expect(report.epochsRun == 8 && report.validationAccuracy != nil)
        // Progress after every batch, and the loss falls.
        #expect(reports.count == 8 * 7)
        #expect(reports.last!.loss < reports.first!.loss)
        #expect(net.parameters.allSatisfy { $0.value.storage.allSatisfy { $0 >= 1e-5 } })
    }

    /// research/pfc.md §3.1: a task validates on its own split plus earlier tasks' rows
    /// (`alsoValidatingOn`); the kept epoch's figures are those of the joined set, exactly.
    @Test func alsoValidatingOnJoinsTheValidationSet() throws {
        let data = LabeledDataset(features: SeededRandom(seed: 1).uniformMatrixCopy(rows: 60, cols: 6), labels: (0..<60).map { $0 % 3 })
        let extra = LabeledDataset(features: SeededRandom(seed: 2).uniformMatrixCopy(rows: 25, cols: 6), labels: (0..<25).map { ($0 * 7) % 3 })
        var options = TrainingOptions()
        options.epochs = 2
        options.batchSize = 10
        options.earlyStoppingPatience = nil
        let make = { NetworkFactory.make(Architecture(kind: .pfc, inputDim: 6, outputDim: 3, basis: 5, iterations: 5), seed: 3) }
        for fraction in [0.2, 0] {
            options.validationFraction = fraction
            var net = make()
            let report = try Trainer(options: options).train(&net, on: data, resumingFrom: nil, alsoValidatingOn: extra, checkpointing: nil, onStep: nil)
            let own = data.splitIndices(fraction: fraction, seed: options.seed).second
            let joined = fraction > 0 ? LabeledDataset.concatenating([data.subset(own), extra])! : extra
            #expect(joined.count == own.count + extra.count)
            let e = Trainer.evaluate(net, on: joined)
            #expect(report.validationLoss == e.loss && report.validationAccuracy == e.accuracy, "fraction \(fraction)")
            if fraction > 0 {
                // Not what the own split alone gives.
                #expect(Trainer.evaluate(net, on: data.subset(own)).loss != e.loss)
            }
        }
        // Rows that do not fit are refused by concatenation.
        #expect(LabeledDataset.concatenating([data, LabeledDataset(features: Matrix(rows: 1, cols: 5), labels: [0])]) == nil)
        #expect(LabeledDataset.concatenating([]) == nil)
    }

    @Test func sameSeedSameModel() {
        let data = LabeledDataset(features: SeededRandom(seed: 1).uniformMatrixCopy(rows: 40, cols: 6), labels: (0..<40).map { $0 % 3 })
        var options = TrainingOptions()
        options.epochs = 2
        options.batchSize = 8
        func run() -> [Parameter] {
            var net = NetworkFactory.make(Architecture(kind: .pfc, inputDim: 6, outputDim: 3, basis: 5, iterations: 5), seed: 3)
            _ = Trainer(options: options).train(&net, on: data)
            return net.parameters
        }
        #expect(run() == run())
    }

    @Test func cancellationAndEarlyStopping() {
        let data = LabeledDataset(features: SeededRandom(seed: 1).uniformMatrixCopy(rows: 60, cols: 4), labels: (0..<60).map { $0 % 2 })
        var options = TrainingOptions()
        options.epochs = 50
        options.batchSize = 10
        options.earlyStoppingPatience = 2
        options.learningRate = 1e-9 // nothing improves: stops after the patience runs out
        var net = NetworkFactory.make(Architecture(kind: .mlp, inputDim: 4, outputDim: 2, basis: 4), seed: 1)
        let stopped = Trainer(options: options).train(&net, on: data)
        #expect(stopped.stoppedEarly && stopped.epochsRun <= 4)
        // The patience running out after the last epoch skips nothing: not an early stop.
        options.epochs = 3
        let ranOut = Trainer(options: options).train(&net, on: data)
        #expect(ranOut.epochsRun == 3 && !ranOut.stoppedEarly)
        options.earlyStoppingPatience = nil
        var calls = 0
        let cancelled = Trainer(options: options).train(&net, on: data) { _ in calls += 1; return calls == 3 ? .stop : .proceed }
        #expect(cancelled.cancelled && calls == 3 && cancelled.epochsRun == 1)
    }
}

extension SeededRandom {
    /// A uniform matrix from a copy of the generator (convenience for one-shot fixtures).
    func uniformMatrixCopy(rows: Int, cols: Int) -> Matrix {
        var c = self
        return c.uniformMatrix(rows: rows, cols: cols)
    }
}
