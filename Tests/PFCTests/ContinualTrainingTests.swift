import Testing
@testable import Linalg
@testable import PFC

@Suite struct ContinualTrainingTests {
    let data = LabeledDataset(features: SeededRandom(seed: 4).uniformMatrixCopy(rows: 30, cols: 6), labels: (0..<30).map { $0 % 3 })
    let arch = Architecture(kind: .pfc, inputDim: 6, outputDim: 3, basis: 20, iterations: 4, loss: .imagesLabelsMSE)

    func options(_ window: SlidingWindowSchedule?, epochs: Int = 2, validation: Double = 0) -> TrainingOptions {
        var o = TrainingOptions()
        o.epochs = epochs
        o.batchSize = 8
        o.learningRate = 1e-2
        o.validationFraction = validation
        o.earlyStoppingPatience = nil
        o.slidingWindow = window
        return o
    }

    @Test func deterministicModeResetsTheWindowEachEpochAndKeepsTheOrder() throws {
        let schedule = SlidingWindowSchedule(width: 4, slide: 1.5, start: 0.5, deterministic: true)
        var net = NetworkFactory.make(arch, seed: 1)
        var records = [BatchRecord]()
        let report = try Trainer(options: options(schedule, epochs: 3)).train(&net, on: data, onStep: { records.append($0) })
        #expect(records.count == 3 * 4)
        for r in records {
            #expect(r.windows == [schedule.window(epoch: r.epoch, batchIndex: r.batchIndex, batchesPerEpoch: 4)])
            #expect(r.windows == [SlidingWindowOptimizer.window(start: 0.5, width: 4, slide: 1.5, step: r.batchIndex)])
            #expect(r.exampleIndices == Array((r.batchIndex * 8)..<min(30, r.batchIndex * 8 + 8)))
        }
        #expect(records.map(\.step) == Array(0..<12))
        #expect(report.nextWindowStart == 0.5 + 1.5 * 4 && report.keptSteps == 12 && report.windowColumns == 0..<9)
        // Columns no window reached are bit-identical to the initialisation.
        let initial = NetworkFactory.make(arch, seed: 1).parameters
        for (a, b) in zip(initial, net.parameters) { #expect(a.value.columns(9..<20) == b.value.columns(9..<20)) }
    }

    @Test func slidingWindowKeepsSlidingAcrossEpochsAndMapsExamplesThroughTheSplit() throws {
        let schedule = SlidingWindowSchedule(width: 3, slide: 0.5)
        var net = NetworkFactory.make(arch, seed: 1)
        var records = [BatchRecord]()
        let o = options(schedule, epochs: 2, validation: 0.2)
        let report = try Trainer(options: o).train(&net, on: data, onStep: { records.append($0) })
        let (trainRows, validationRows) = data.splitIndices(fraction: 0.2, seed: o.seed)
        #expect(records.count == 2 * 3)
        #expect(records.map { $0.windows[0] } == (0..<6).map { SlidingWindowOptimizer.window(start: 0, width: 3, slide: 0.5, step: $0) })
        for epoch in 1...2 {
            let seen = records.filter { $0.epoch == epoch }.flatMap(\.exampleIndices)
            #expect(seen.sorted() == trainRows.sorted() && Set(seen).isDisjoint(with: validationRows))
        }
        // The kept checkpoint decides where the next task starts (§3.1).
        #expect(report.keptSteps == 3 * report.bestEpoch)
        #expect(report.nextWindowStart == 0.5 * Double(report.keptSteps!))
    }

    @Test func skippedBatchesAdvanceTheWindowWithoutAnUpdate() throws {
        // Every batch skipped: nothing changes, but the windows still move.
        var schedule = SlidingWindowSchedule(width: 4, slide: 2, deterministic: true)
        schedule.skipBatches = [0, 1, 2, 3]
        var net = NetworkFactory.make(arch, seed: 1)
        var records = [BatchRecord]()
        _ = try Trainer(options: options(schedule)).train(&net, on: data, onStep: { records.append($0) })
        #expect(net.parameters == NetworkFactory.make(arch, seed: 1).parameters)
        #expect(records.allSatisfy { $0.skipped && $0.loss == nil })
        #expect(records.prefix(4).map { $0.windows[0] } == [0..<4, 2..<6, 4..<8, 6..<10])
        // Skipping batch 1 only keeps the batch → column map of the other batches.
        schedule.skipBatches = [1]
        var skipped = NetworkFactory.make(arch, seed: 1)
        var recs = [BatchRecord]()
        _ = try Trainer(options: options(schedule, epochs: 1)).train(&skipped, on: data, onStep: { recs.append($0) })
        #expect(recs.map(\.skipped) == [false, true, false, false])
        #expect(recs.map { $0.windows[0] } == [0..<4, 2..<6, 4..<8, 6..<10])
    }

    @Test func capacityIsCheckedBeforeTraining() throws {
        let schedule = SlidingWindowSchedule(width: 5, slide: 2)
        let trainer = Trainer(options: options(schedule, epochs: 3))
        // 30 examples, batch 8 → 4 batches × 3 epochs = 12 steps → ⌊2·11 + 5⌋ = 27 > 20.
        #expect(trainer.requiredBasis(trainingExamples: 30) == 27)
        var net = NetworkFactory.make(arch, seed: 1)
        let before = net.parameters
        #expect(throws: SlidingWindowError.capacityExceeded(needed: 27, available: 20)) {
            try trainer.train(&net, on: data, onStep: nil)
        }
        let report = trainer.train(&net, on: data)   // the non-throwing entry reports instead
        #expect(report.failure?.contains("K = 27") == true && report.epochsRun == 0 && net.parameters == before)
        #expect(Trainer(options: options(schedule, epochs: 1)).requiredBasis(trainingExamples: 30) == 11)
        #expect(trainer.trainingExamples(fromDataSetOf: 100) == 100)
        var mlp = NetworkFactory.make(Architecture(kind: .mlp, inputDim: 6, outputDim: 3, basis: 20), seed: 1)
        #expect(throws: SlidingWindowError.self) { try trainer.train(&mlp, on: data, onStep: nil) }
    }

    @Test func bothBlocksOfPFC2ShareTheWindow() throws {
        let arch2 = Architecture(kind: .pfc2, inputDim: 6, outputDim: 3, basis: 12, iterations: 3)
        var net = NetworkFactory.make(arch2, seed: 2)
        var records = [BatchRecord]()
        _ = try Trainer(options: options(SlidingWindowSchedule(width: 2, slide: 1), epochs: 1)).train(&net, on: data, onStep: { records.append($0) })
        #expect(records.allSatisfy { $0.windows.count == 2 && $0.windows[0] == $0.windows[1] })
        let initial = NetworkFactory.make(arch2, seed: 2).parameters
        for (a, b) in zip(initial, net.parameters) {
            #expect(a.value.columns(5..<12) == b.value.columns(5..<12))    // windows [0,2) … [3,5)
            #expect(a.value.columns(0..<5) != b.value.columns(0..<5))
        }
    }

    @Test func nonSlidingTrainingReportsEveryStepWithoutWindows() throws {
        var net = NetworkFactory.make(arch, seed: 1)
        var records = [BatchRecord]()
        let report = try Trainer(options: options(nil)).train(&net, on: data, onStep: { records.append($0) })
        #expect(records.count == 8 && records.allSatisfy { $0.windows.isEmpty && !$0.skipped && $0.loss != nil })
        #expect(report.nextWindowStart == nil && report.windowColumns == nil && report.keptSteps == 8)
    }
}

@Suite struct GrowthAndForgettingTests {
    let arch = Architecture(kind: .pfc2, inputDim: 5, outputDim: 3, basis: 6, iterations: 3)

    @Test func growthAppendsFreshColumnsAndKeepsTheOldOnes() throws {
        let net = NetworkFactory.make(arch, seed: 7)
        let grown = try BasisGrowth.appendColumns(to: net, count: 4, seed: 9)
        #expect(grown.architecture.basis == 10)
        for (a, b) in zip(net.parameters, grown.parameters) {
            #expect(b.value.cols == 10 && b.value.rows == a.value.rows && b.name == a.name)
            #expect(b.value.columns(0..<6) == a.value)
            #expect(b.value.columns(6..<10).storage.allSatisfy { $0 >= 0 && $0 < 0.01 })
        }
        let again = try BasisGrowth.appendColumns(to: net, count: 4, seed: 9)
        #expect(again.parameters == grown.parameters)   // seeded
        let x = SeededRandom(seed: 1).uniformMatrixCopy(rows: 5, cols: 7)
        let y = grown.predict(x)
        #expect(y.rows == 3 && y.cols == 7)
        #expect(throws: ColumnEditError.self) {
            try BasisGrowth.appendColumns(to: NetworkFactory.make(Architecture(kind: .mlp, inputDim: 5, outputDim: 3), seed: 0), count: 1, seed: 0)
        }
    }

    @Test func forgettingZeroesExactlyTheGivenColumns() throws {
        let net = NetworkFactory.make(arch, seed: 7)
        let result = try Forgetting.zeroColumns([1..<3, 2..<4], of: net)
        #expect(result.columns == [1, 2, 3] && result.reset == [1, 2, 3] && result.alreadyReset.isEmpty)
        for (a, b) in zip(net.parameters, result.network.parameters) {
            for c in 0..<6 {
                if (1..<4).contains(c) { #expect(b.value.column(c).allSatisfy { $0 == 0 }) }
                else { #expect(b.value.column(c) == a.value.column(c)) }
            }
        }
        #expect(Forgetting.zeroColumns(of: result.network) == [1, 2, 3])
        // Repeating changes nothing more and reports the columns as already reset.
        let again = try Forgetting.zeroColumns([3..<5], of: result.network)
        #expect(again.alreadyReset == [3] && again.reset == [4])
        #expect(try Forgetting.zeroColumns([1..<4], of: result.network).network.parameters == result.network.parameters)
        #expect(net.parameters == NetworkFactory.make(arch, seed: 7).parameters)   // pure
        #expect(throws: ColumnEditError.self) { try Forgetting.zeroColumns([5..<7], of: net) }
    }
}

extension ContinualTrainingTests {
    /// A fixed-order run with a validation split trains on the remaining rows in the data's own
    /// order (research/pfc.md §3.2: sorted by label), every epoch; the validation rows are the
    /// seeded split's, as for a shuffled run, which visits its rows in a new order each epoch.
    @Test(arguments: [true, false])
    func fixedOrderRunsKeepTheDataOrderAfterTheSplit(deterministicWindow: Bool) throws {
        var o = options(deterministicWindow ? SlidingWindowSchedule(width: 3, slide: 0.5, deterministic: true) : nil, epochs: 2, validation: 0.2)
        o.shuffle = false
        var net = NetworkFactory.make(arch, seed: 1)
        var records = [BatchRecord]()
        _ = try Trainer(options: o).train(&net, on: data, onStep: { records.append($0) })
        let (trainRows, validationRows) = data.splitIndices(fraction: 0.2, seed: o.seed)
        #expect(trainRows != trainRows.sorted(), "the split's own order is a permutation")
        for epoch in 1...2 {
            #expect(records.filter { $0.epoch == epoch }.flatMap(\.exampleIndices) == trainRows.sorted())
        }
        #expect(Trainer(options: o).validationSplit(data).validation == validationRows)

        o.shuffle = true
        o.slidingWindow = nil
        records = []
        net = NetworkFactory.make(arch, seed: 1)
        _ = try Trainer(options: o).train(&net, on: data, onStep: { records.append($0) })
        let epochs = (1...2).map { e in records.filter { $0.epoch == e }.flatMap(\.exampleIndices) }
        #expect(epochs[0] != epochs[1] && epochs.allSatisfy { $0.sorted() == trainRows.sorted() })
    }
}
