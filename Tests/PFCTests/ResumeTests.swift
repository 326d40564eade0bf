// Resuming a training run from a checkpointed TrainerState: the final weights, report and batch
// records are bit for bit those of the run that never stopped (digits fixture).
import Foundation
import Testing
@testable import Linalg
@testable import PFC

@Suite struct ResumeTests {
    static let digits: LabeledDataset = {
        let all = try! CSVDatasetReader.read(path: Fixtures.digitsTrain, rules: .init(requireNonNegative: true))
        return all.subset(Array(0..<400))
    }()

    func options(optimizer: OptimizerKind = .rmsprop, window: SlidingWindowSchedule? = nil) -> TrainingOptions {
        var o = TrainingOptions()
        o.epochs = 4
        o.batchSize = 50
        o.learningRate = 3e-3
        o.optimizer = optimizer
        o.validationFraction = 0.2
        o.earlyStoppingPatience = 3
        o.seed = 7
        o.slidingWindow = window
        return o
    }

    /// Runs to the end, saving every checkpoint `due` asks for; returns the weights, report, records and states.
    func run(_ o: TrainingOptions, arch: Architecture, resume: TrainerState? = nil, recordsSoFar: [BatchRecord] = [],
             due: @escaping (Int, Int, Bool) -> Bool = { _, _, _ in true }) throws
        -> (params: [Parameter], report: TrainingReport, records: [BatchRecord], states: [(TrainerState, Int)]) {
        var net = NetworkFactory.make(arch, seed: 3)
        var records = recordsSoFar
        var states: [(TrainerState, Int)] = []
        let box = Box()
        let checkpointing = Trainer.Checkpointing(due: due) { s in box.states.append(s) }
        let report = try Trainer(options: o).train(&net, on: Self.digits, resumingFrom: resume, checkpointing: checkpointing,
                                                   onStep: { records.append($0); box.count = records.count })
        // Pair each state with the number of records it had seen (the ledger so far).
        states = box.states.map { ($0, $0.steps) }
        return (net.parameters, report, records, states)
    }

    final class Box { var states: [TrainerState] = []; var count = 0 }

    func check(_ o: TrainingOptions, arch: Architecture) throws {
        let full = try run(o, arch: arch)
        #expect(full.states.count >= 3, "a checkpoint after every batch and epoch")
        // Resume from an epoch boundary and from the middle of an epoch; the state goes through its bytes.
        let boundary = try #require(full.states.first { $0.0.epoch == 3 && $0.0.batch == 0 })
        let middle = try #require(full.states.first { $0.0.epoch == 2 && $0.0.batch == 3 })
        for (state, steps) in [boundary, middle] {
            let decoded = try TrainerState.decode(try state.encoded())
            #expect(decoded == state)
            let resumed = try run(o, arch: arch, resume: decoded, recordsSoFar: Array(full.records.prefix(steps)))
            #expect(resumed.params == full.params, "weights differ after resuming at epoch \(state.epoch), batch \(state.batch)")
            #expect(resumed.records == full.records)
            #expect(resumed.report.bestEpoch == full.report.bestEpoch && resumed.report.epochsRun == full.report.epochsRun)
            #expect(resumed.report.finalLoss == full.report.finalLoss && resumed.report.keptSteps == full.report.keptSteps)
            #expect(resumed.report.nextWindowStart == full.report.nextWindowStart)
        }
        // Sensitivity: the same boundary state without its optimizer statistics ends elsewhere.
        var lost = try TrainerState.decode(try boundary.0.encoded())
        lost.optimizer.buffers = []
        #expect(try run(o, arch: arch, resume: lost, recordsSoFar: Array(full.records.prefix(boundary.1))).params != full.params)
    }

    @Test func rmspropResumesBitIdentical() throws {
        try check(options(), arch: Architecture(kind: .pfc, inputDim: 64, outputDim: 10, basis: 24, iterations: 8))
    }

    @Test func adamResumesBitIdentical() throws {
        try check(options(optimizer: .adam), arch: Architecture(kind: .mlp, inputDim: 64, outputDim: 10, basis: 16, iterations: 1, nonnegative: false))
    }

    @Test func deterministicSlidingWindowResumesBitIdentical() throws {
        let window = SlidingWindowSchedule(width: 5, slide: 0.5, start: 1.5, deterministic: true)
        try check(options(window: window), arch: Architecture(kind: .pfc, inputDim: 64, outputDim: 10, basis: 24, iterations: 8, loss: .imagesLabelsMSE))
    }

    @Test func aStateThatDoesNotFitIsRefused() throws {
        let arch = Architecture(kind: .pfc, inputDim: 64, outputDim: 10, basis: 24, iterations: 8)
        let full = try run(options(), arch: arch, due: { e, b, end in end && e == 1 })
        var state = try #require(full.states.first?.0)
        // Another basis size, another data size, another optimizer: refused before any step.
        var net = NetworkFactory.make(Architecture(kind: .pfc, inputDim: 64, outputDim: 10, basis: 20, iterations: 8), seed: 3)
        #expect(throws: CheckpointError.self) { _ = try Trainer(options: options()).train(&net, on: Self.digits, resumingFrom: state, checkpointing: nil, onStep: nil) }
        var small = NetworkFactory.make(arch, seed: 3)
        #expect(throws: CheckpointError.self) {
            _ = try Trainer(options: options()).train(&small, on: Self.digits.subset(Array(0..<100)), resumingFrom: state, checkpointing: nil, onStep: nil)
        }
        #expect(throws: CheckpointError.self) {
            _ = try Trainer(options: options(optimizer: .adam)).train(&small, on: Self.digits, resumingFrom: state, checkpointing: nil, onStep: nil)
        }
        state.random = [0, 0, 0, 0]
        #expect(throws: CheckpointError.self) { _ = try Trainer(options: options()).train(&small, on: Self.digits, resumingFrom: state, checkpointing: nil, onStep: nil) }
    }
}

@Suite struct SequenceResumeTests {
    @Test func sequenceTrainerResumesBitIdentical() throws {
        let data = SequenceTrainingTests.toy(120, seed: 1)
        let (train, validation) = data.split(fraction: 0.25, seed: 0)
        var opts = SequenceTrainingOptions()
        opts.epochs = 6; opts.batchSize = 20; opts.learningRate = 1e-2; opts.earlyStoppingPatience = nil
        let start = FactorizedRNN(inputDim: 2, hidden: 12, outputDim: 3, iterations: 5, bptt: true, seed: 3)
        var full = start
        var states: [TrainerState] = []
        let report = try SequenceTrainer(options: opts).train(&full, train: train, validation: validation, resumingFrom: nil,
                                                              checkpoint: { states.append($0) })
        #expect(states.map(\.epoch) == [2, 3, 4, 5, 6])
        for state in [states[1], states[3]] {
            var resumed = start
            let r = try SequenceTrainer(options: opts).train(&resumed, train: train, validation: validation,
                                                             resumingFrom: try TrainerState.decode(try state.encoded()), checkpoint: nil)
            #expect(resumed.parameters == full.parameters, "resumed at epoch \(state.epoch)")
            #expect(r.bestEpoch == report.bestEpoch && r.validationAccuracy == report.validationAccuracy && r.epochsRun == 6)
        }
        // Without validation the last epoch's weights are kept: resumed equal, and a state whose optimizer
        // statistics were lost ends elsewhere (the comparison can fail).
        var last = start
        var plain: [TrainerState] = []
        _ = try SequenceTrainer(options: opts).train(&last, train: train, validation: nil, resumingFrom: nil, checkpoint: { plain.append($0) })
        var again = start
        _ = try SequenceTrainer(options: opts).train(&again, train: train, validation: nil, resumingFrom: plain[2], checkpoint: nil)
        #expect(again.parameters == last.parameters)
        var wrong = plain[2]
        wrong.optimizer.buffers = []
        var other = start
        _ = try SequenceTrainer(options: opts).train(&other, train: train, validation: nil, resumingFrom: wrong, checkpoint: nil)
        #expect(other.parameters != last.parameters)
    }
}
