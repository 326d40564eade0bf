// A follow-on run that continues an earlier run's optimizer statistics (`continuingOptimizer`,
// the engine side of "continue_optimizer"): two runs of E epochs give bit for bit the weights of
// one run of 2E, and the statistics a run reports are those of the epoch whose weights it kept.
import Foundation
import Testing
@testable import Linalg
@testable import PFC

@Suite struct ContinueOptimizerTests {
    static let digits: LabeledDataset = {
        let all = try! CSVDatasetReader.read(path: Fixtures.digitsTrain, rules: .init(requireNonNegative: true))
        return all.subset(Array(0..<300))
    }()

    func options(_ optimizer: OptimizerKind, epochs: Int) -> TrainingOptions {
        var o = TrainingOptions()
        o.epochs = epochs
        o.batchSize = 50
        o.learningRate = 3e-3
        o.optimizer = optimizer
        o.validationFraction = 0     // no best-epoch checkpoint: the run keeps its last weights
        o.earlyStoppingPatience = nil
        o.shuffle = false            // the same batch order in every epoch, so runs can be chained
        o.seed = 5
        return o
    }

    func check(_ optimizer: OptimizerKind, arch: Architecture) throws {
        var whole = NetworkFactory.make(arch, seed: 2)
        var first = whole
        let one = try Trainer(options: options(optimizer, epochs: 4)).train(&whole, on: Self.digits, resumingFrom: nil, checkpointing: nil, onStep: nil)
        let half = try Trainer(options: options(optimizer, epochs: 2)).train(&first, on: Self.digits, resumingFrom: nil, checkpointing: nil, onStep: nil)
        let kept = try #require(half.optimizerState)
        #expect(kept.kind == optimizer.rawValue && kept.buffers.count == first.parameters.count * (optimizer == .adam ? 2 : 1))
        // Through its stored form (JSON), as the service keeps it.
        let stored = try JSONDecoder().decode(OptimizerState.self, from: try JSONEncoder().encode(kept))
        #expect(stored == kept)

        var continued = first, fresh = first
        let second = try Trainer(options: options(optimizer, epochs: 2))
            .train(&continued, on: Self.digits, resumingFrom: nil, continuingOptimizer: stored, checkpointing: nil, onStep: nil)
        #expect(continued.parameters == whole.parameters, "2 + 2 epochs with the optimizer continued must equal 4 epochs")
        #expect(second.optimizerState == one.optimizerState)
        // Sensitivity: the follow-on run from zero statistics ends elsewhere.
        _ = try Trainer(options: options(optimizer, epochs: 2)).train(&fresh, on: Self.digits, resumingFrom: nil, checkpointing: nil, onStep: nil)
        #expect(fresh.parameters != whole.parameters)
    }

    @Test func rmspropContinuesBitIdentical() throws {
        try check(.rmsprop, arch: Architecture(kind: .pfc, inputDim: 64, outputDim: 10, basis: 24, iterations: 8))
    }

    @Test func adamContinuesBitIdentical() throws {
        try check(.adam, arch: Architecture(kind: .mlp, inputDim: 64, outputDim: 10, basis: 16, iterations: 1, nonnegative: false))
    }

    /// With validation, the run keeps the best-validation-loss epoch's weights, and the statistics it
    /// reports are that epoch's (read from the end-of-epoch checkpoint), not the last step's.
    @Test func reportedStatisticsAreTheKeptEpochs() throws {
        // The first setting (of a few, all deterministic: initial weights × learning rate) whose best epoch is not the last.
        var checked = false
        for (seed, lr): (UInt64, Float) in [2, 3, 4, 5, 6, 7, 8, 9].flatMap({ s in [Float(1e-2), 3e-2, 1e-1].map { (s, $0) } }) where !checked {
            var o = options(.rmsprop, epochs: 8)
            o.validationFraction = 0.3
            o.learningRate = lr
            var net = NetworkFactory.make(Architecture(kind: .mlp, inputDim: 64, outputDim: 10, basis: 32, iterations: 1, nonnegative: false), seed: seed)
            final class Box { var states: [TrainerState] = [] }
            let box = Box()
            let report = try Trainer(options: o).train(&net, on: Self.digits.subset(Array(0..<100)), resumingFrom: nil,
                                                        checkpointing: .init(due: { _, _, end in end }) { box.states.append($0) }, onStep: nil)
            let b = report.bestEpoch
            guard b < o.epochs else { continue }
            let atBest = try #require(box.states.first { $0.epoch == b + 1 && $0.batch == 0 })
            #expect(report.optimizerState == atBest.optimizer, "seed \(seed), lr \(lr): best epoch \(b)")
            #expect(report.optimizerState != box.states.last?.optimizer)
            checked = true
        }
        #expect(checked, "no setting had its best validation loss before the last epoch")
    }

    @Test func aStateThatDoesNotFitIsRefused() throws {
        var net = NetworkFactory.make(Architecture(kind: .pfc, inputDim: 64, outputDim: 10, basis: 24, iterations: 8), seed: 2)
        let wrong = OptimizerState(kind: "rmsprop", buffers: [FloatBuffer([1, 2, 3])], steps: 0)
        #expect(throws: CheckpointError.self) {
            try Trainer(options: options(.rmsprop, epochs: 1)).train(&net, on: Self.digits, resumingFrom: nil, continuingOptimizer: wrong,
                                                                    checkpointing: nil, onStep: nil)
        }
        let adam = OptimizerState(kind: "adam", buffers: [], steps: 3)
        #expect(throws: CheckpointError.self) {
            try Trainer(options: options(.rmsprop, epochs: 1)).train(&net, on: Self.digits, resumingFrom: nil, continuingOptimizer: adam,
                                                                    checkpointing: nil, onStep: nil)
        }
    }
}
