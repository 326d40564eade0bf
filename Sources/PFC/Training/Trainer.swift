// Trainer: epochs of mini-batches with validation, early stopping, the best-validation checkpoint
// and progress reports (research/pfc.md §6, "Training loop").
import Linalg

/// How to train.
public struct TrainingOptions: Sendable, Codable, Equatable {
    /// Maximum number of epochs.
    public var epochs: Int = 10
    /// Examples per mini-batch (the paper's 200).
    public var batchSize: Int = 200
    /// Step size (the paper's RMSprop uses 3e-4 on MNIST; 2e-3 suits the small digits set).
    public var learningRate: Float = 3e-4
    /// Decoupled per-step decay (paper: 1e-4).
    public var weightDecay: Float = 1e-4
    /// Optimizer.
    public var optimizer: OptimizerKind = .rmsprop
    /// Fraction of the training data held out for validation (paper: 0.15); 0 disables validation.
    public var validationFraction: Double = 0.15
    /// Stop after this many epochs without improvement in validation loss or accuracy (paper: 20); nil never stops early.
    public var earlyStoppingPatience: Int? = 20
    /// Reshuffle every epoch (seeded); false keeps a fixed order.
    public var shuffle: Bool = true
    /// Seed of the split and the shuffles.
    public var seed: UInt64 = 0
    /// Train with the sliding learnable window (research/pfc.md §3) instead of `optimizer`; PFC kinds only.
    public var slidingWindow: SlidingWindowSchedule? = nil

    /// Options with the defaults above.
    public init() {}

    /// Checks the options; returns a message naming the problem, or nil.
    public func validationProblem() -> String? {
        if epochs < 1 { return "epochs must be at least 1" }
        if batchSize < 1 { return "batch_size must be at least 1" }
        if !(learningRate > 0) || !(learningRate <= 10) { return "learning_rate must be a positive number at most 10" }
        if !(weightDecay >= 0) || weightDecay >= 1 { return "weight_decay must be in [0, 1)" }
        if !(validationFraction >= 0 && validationFraction < 1) { return "validation_fraction must be in [0, 1)" }
        if let p = earlyStoppingPatience, p < 1 { return "early_stopping patience must be at least 1" }
        if let w = slidingWindow, let why = w.validationProblem() { return why }
        return nil
    }
}

/// A progress report, sent after every mini-batch.
public struct TrainingProgress: Sendable, Codable, Equatable {
    /// 1-based epoch.
    public var epoch: Int
    /// Maximum epochs.
    public var epochs: Int
    /// 1-based batch within the epoch.
    public var batch: Int
    /// Batches per epoch.
    public var batches: Int
    /// Mean training loss so far in this epoch.
    public var loss: Float
    /// Training accuracy so far in this epoch.
    public var accuracy: Float
    /// Training throughput of this epoch so far.
    public var examplesPerSecond: Double
    /// Validation loss of the last finished epoch.
    public var validationLoss: Float?
    /// Validation accuracy of the last finished epoch.
    public var validationAccuracy: Float?
    /// Sparsity of the last training inference pass on this thread when the report was made (issue 14; not encoded).
    public var fista: FISTAStatistics? = FISTAStatistics.lastTraining

    enum CodingKeys: String, CodingKey {
        case epoch, epochs, batch, batches, loss, accuracy
        case examplesPerSecond = "examples_per_second", validationLoss = "validation_loss", validationAccuracy = "validation_accuracy"
    }
}

/// What a progress callback tells the trainer.
public enum TrainingControl: Sendable { case proceed, stop }

/// One finished epoch of a training run: a point of its learning curve.
public struct EpochSummary: Sendable, Codable, Equatable {
    /// 1-based epoch.
    public var epoch: Int
    /// Mean training loss and accuracy over the epoch's batches (as the weights changed).
    public var trainLoss: Float
    public var trainAccuracy: Float
    /// Loss and accuracy on the validation split after the epoch (nil without validation).
    public var validationLoss: Float?
    public var validationAccuracy: Float?
    /// Training throughput of the epoch.
    public var examplesPerSecond: Double
    /// PFC kinds: mean fraction of code entries above the floor in the epoch's last training pass.
    public var activeFraction: Float?

    public init(epoch: Int, trainLoss: Float, trainAccuracy: Float, validationLoss: Float?, validationAccuracy: Float?,
                examplesPerSecond: Double, activeFraction: Float?) {
        self.epoch = epoch; self.trainLoss = trainLoss; self.trainAccuracy = trainAccuracy
        self.validationLoss = validationLoss; self.validationAccuracy = validationAccuracy
        self.examplesPerSecond = examplesPerSecond; self.activeFraction = activeFraction
    }

    enum CodingKeys: String, CodingKey {
        case epoch
        case trainLoss = "train_loss", trainAccuracy = "train_accuracy", validationLoss = "validation_loss"
        case validationAccuracy = "validation_accuracy", examplesPerSecond = "examples_per_second", activeFraction = "active_fraction"
    }
}

/// The outcome of a training run.
public struct TrainingReport: Sendable, Codable, Equatable {
    /// Epochs actually run.
    public var epochsRun: Int
    /// Epoch whose parameters were kept (best validation loss; the last epoch without validation).
    public var bestEpoch: Int
    /// Mean training loss of the last epoch.
    public var finalLoss: Float
    /// Accuracy of the kept parameters on the training examples.
    public var trainAccuracy: Float
    /// Accuracy of the kept parameters on the validation examples.
    public var validationAccuracy: Float?
    /// Loss of the kept parameters on the validation examples.
    public var validationLoss: Float?
    /// Training throughput over the whole run (optimizer steps only).
    public var examplesPerSecond: Double
    /// Wall-clock seconds of the run.
    public var seconds: Double
    /// The early-stopping rule ended training before `epochs` (not when it fired after the last one).
    public var stoppedEarly: Bool
    /// Stopped because the progress callback asked.
    public var cancelled: Bool
    /// Optimizer steps (counting skipped batches) whose updates the kept parameters contain: steps
    /// `0..<keptSteps` of the `onStep` records; later steps were discarded with their checkpoint.
    public var keptSteps: Int? = nil
    /// Sliding window only: where the next task's window starts, the position p when the kept
    /// checkpoint was taken (research/pfc.md §3.1: the window keeps sliding across tasks).
    public var nextWindowStart: Double? = nil
    /// Sliding window only: the union [first c0, last c1) of the windows of every step run.
    public var windowColumns: Range<Int>? = nil
    /// Why nothing was trained (a sliding window that would run past K, reported by the
    /// non-throwing entry points; the throwing ones throw instead).
    public var failure: String? = nil
    /// Every finished epoch, in order (the learning curve; a resumed run includes the epochs before its checkpoint).
    public var history: [EpochSummary] = []
    /// The optimizer's statistics when the kept parameters were taken (the best-validation-loss
    /// epoch's, else the last step's): what a follow-on run passes as `continuingOptimizer` to go on
    /// as if it had never stopped. Not part of the report's JSON.
    public var optimizerState: OptimizerState? = nil

    enum CodingKeys: String, CodingKey {
        case epochsRun = "epochs_run", bestEpoch = "best_epoch", finalLoss = "final_loss", trainAccuracy = "train_accuracy"
        case validationAccuracy = "validation_accuracy", validationLoss = "validation_loss"
        case examplesPerSecond = "examples_per_second", seconds, stoppedEarly = "stopped_early", cancelled
        case keptSteps = "kept_steps", nextWindowStart = "next_window_start", windowColumns = "window_columns", failure, history
    }
}

/// Fits a network to a labelled data set.
public struct Trainer: Sendable {
    /// The options of every run.
    public var options: TrainingOptions

    /// A trainer.
    public init(options: TrainingOptions) { self.options = options }

    /// Trains `network` in place on `data`, holding out `options.validationFraction` for validation.
    /// At the end the network holds the best-validation-loss checkpoint. With a sliding window that
    /// would run past K nothing is trained and the report's `failure` says why.
    public func train(_ network: inout any Network, on data: LabeledDataset,
                      progress: (TrainingProgress) -> TrainingControl = { _ in .proceed }) -> TrainingReport {
        do { return try train(&network, on: data, onStep: nil, progress: progress) } catch { return Self.failed(error) }
    }

    /// Trains on `train`, selecting the checkpoint and stopping early on `validation` when given.
    public func train(_ network: inout any Network, train: LabeledDataset, validation: LabeledDataset?,
                      progress: (TrainingProgress) -> TrainingControl = { _ in .proceed }) -> TrainingReport {
        do { return try self.train(&network, train: train, validation: validation, onStep: nil, progress: progress) }
        catch { return Self.failed(error) }
    }

    /// `train(_:on:progress:)` that reports every optimizer step to `onStep` (example indices are
    /// rows of `data`, mapped through the validation split) and throws, before any step, when the
    /// sliding window cannot run (`SlidingWindowError.capacityExceeded` names the K needed).
    public func train(_ network: inout any Network, on data: LabeledDataset, onStep: ((BatchRecord) -> Void)?,
                      progress: (TrainingProgress) -> TrainingControl = { _ in .proceed }) throws(SlidingWindowError) -> TrainingReport {
        if options.validationFraction > 0 && data.count >= 2 {
            let (a, b) = validationSplit(data)
            return try run(&network, train: data.subset(a), rows: a, validation: b.isEmpty ? nil : data.subset(b),
                           onStep: onStep, progress: progress)
        }
        return try run(&network, train: data, rows: nil, validation: nil, onStep: onStep, progress: progress)
    }

    /// `train(_:train:validation:progress:)` that reports every optimizer step (example indices are
    /// rows of `train`) and throws, before any step, when the sliding window cannot run.
    public func train(_ network: inout any Network, train: LabeledDataset, validation: LabeledDataset?,
                      onStep: ((BatchRecord) -> Void)?,
                      progress: (TrainingProgress) -> TrainingControl = { _ in .proceed }) throws(SlidingWindowError) -> TrainingReport {
        try run(&network, train: train, rows: nil, validation: validation, onStep: onStep, progress: progress)
    }

    /// The rows of `data` to train on and to validate on (the seeded split of `validationFraction`).
    /// A run in a fixed order (no shuffle, or the deterministic window) trains on its rows in the
    /// data's own order, as research/pfc.md §3.2's sorted-label run does (the split's permutation
    /// would undo the sorting); a shuffled run keeps the split's order, as before.
    public func validationSplit(_ data: LabeledDataset) -> (train: [Int], validation: [Int]) {
        let (a, b) = data.splitIndices(fraction: options.validationFraction, seed: options.seed)
        return (keepsOrder ? a.sorted() : a, b)
    }

    /// The run visits its training rows in one fixed order every epoch.
    public var keepsOrder: Bool { !options.shuffle || (options.slidingWindow?.deterministic ?? false) }

    /// Batches per epoch for `examples` training examples (after the validation split).
    public func batchesPerEpoch(examples: Int) -> Int {
        let bs = max(1, min(options.batchSize, examples))
        return (examples + bs - 1) / bs
    }

    /// Training examples `train(_:on:…)` keeps from a data set of `count` rows after the validation split.
    public func trainingExamples(fromDataSetOf count: Int) -> Int {
        guard options.validationFraction > 0 && count >= 2 else { return count }
        return count - Int((Double(count) * options.validationFraction).rounded())
    }

    /// The basis size K the sliding window of these options needs for `examples` training examples
    /// (nil without a sliding window). Compare with the model's K before training to refuse a task.
    public func requiredBasis(trainingExamples examples: Int) -> Int? {
        options.slidingWindow?.requiredBasis(epochs: options.epochs, batchesPerEpoch: batchesPerEpoch(examples: examples))
    }

    /// Checks that the sliding window fits `network` for `examples` training examples.
    public func checkCapacity(_ network: any Network, trainingExamples examples: Int) throws(SlidingWindowError) {
        guard let schedule = options.slidingWindow else { return }
        if let why = schedule.validationProblem() { throw .invalidSchedule(why) }
        guard network.architecture.kind.blockCount > 0 else { throw .incompatibleParameters("only PFC models have basis columns") }
        let k = try SlidingWindowOptimizer.sharedBasis(of: network.parameters)
        let needed = requiredBasis(trainingExamples: examples) ?? 0
        if needed > k { throw .capacityExceeded(needed: needed, available: k) }
    }

    static func failed(_ error: SlidingWindowError) -> TrainingReport {
        TrainingReport(epochsRun: 0, bestEpoch: 0, finalLoss: .nan, trainAccuracy: 0, validationAccuracy: nil, validationLoss: nil,
                       examplesPerSecond: 0, seconds: 0, stoppedEarly: false, cancelled: false, failure: error.description)
    }

    /// When the loop saves its state, and where to. `due(epoch, batch, endOfEpoch)` is asked after
    /// every finished batch (`batch` 1-based) and after every epoch's validation; when it answers
    /// true, `save` gets the state from which `train(…resumingFrom:…)` continues.
    public struct Checkpointing {
        public var due: (_ epoch: Int, _ batch: Int, _ endOfEpoch: Bool) -> Bool
        public var save: (TrainerState) -> Void
        public init(due: @escaping (_ epoch: Int, _ batch: Int, _ endOfEpoch: Bool) -> Bool, save: @escaping (TrainerState) -> Void) {
            self.due = due
            self.save = save
        }
    }

    /// `train(_:on:onStep:progress:)` that continues from `state` (nil: from the start) and saves
    /// checkpoints through `checkpointing`. With the same options and data, a run resumed from any
    /// of its checkpoints ends with the same weights, bit for bit, as the run that never stopped
    /// (on the same number of compute threads). A fresh run (`state` nil) may start its optimizer
    /// from `continuingOptimizer`, an earlier run's `TrainingReport.optimizerState`, instead of zero
    /// statistics (RMSprop and Adam only). Throws `CheckpointError` when the state does not fit this
    /// network, data or options, and `SlidingWindowError` as the other entry points.
    /// `alsoValidatingOn` is appended to the validation split (research/pfc.md §3.1: a Split MNIST
    /// task validates on its own split and every earlier task's), and is the whole validation set
    /// when `validationFraction` is 0; it must have the data's features and labels per example.
    public func train(_ network: inout any Network, on data: LabeledDataset, resumingFrom state: TrainerState?,
                      continuingOptimizer: OptimizerState? = nil, alsoValidatingOn extra: LabeledDataset? = nil,
                      checkpointing: Checkpointing?, onStep: ((BatchRecord) -> Void)?,
                      progress: (TrainingProgress) -> TrainingControl = { _ in .proceed }) throws -> TrainingReport {
        let extra = extra.flatMap { $0.count > 0 ? $0 : nil }
        if options.validationFraction > 0 && data.count >= 2 {
            let (a, b) = validationSplit(data)
            let own = b.isEmpty ? nil : data.subset(b)
            let validation: LabeledDataset?
            switch (own, extra) {
            case let (o?, e?): validation = LabeledDataset.concatenating([o, e]) ?? o
            case (nil, let e): validation = e
            case (let o, nil): validation = o
            }
            return try run(&network, train: data.subset(a), rows: a, validation: validation,
                           resume: state, continuing: continuingOptimizer, checkpointing: checkpointing, onStep: onStep, progress: progress)
        }
        return try run(&network, train: data, rows: nil, validation: extra, resume: state, continuing: continuingOptimizer,
                       checkpointing: checkpointing, onStep: onStep, progress: progress)
    }

    /// Checks that optimizer `buffers` fit `parameters` (`sets` buffers per parameter; empty: not started).
    static func optimizerBuffersFit(_ buffers: [FloatBuffer], sets: Int, parameters: [Parameter]) -> Bool {
        let sizes = parameters.map(\.value.count)
        return buffers.isEmpty || (!sizes.isEmpty && buffers.count == sets * sizes.count
            && buffers.enumerated().allSatisfy { $0.element.values.count == sizes[$0.offset % sizes.count] })
    }

    /// `parameters` with the values of `buffers` (same count and sizes), or why not.
    static func parameters(_ parameters: [Parameter], with buffers: [FloatBuffer]) throws(CheckpointError) -> [Parameter] {
        guard buffers.count == parameters.count else {
            throw CheckpointError("the checkpoint holds \(buffers.count) parameters, the network has \(parameters.count)")
        }
        var out = parameters
        for i in out.indices {
            guard buffers[i].values.count == out[i].value.count else {
                throw CheckpointError("checkpoint parameter \(out[i].name) has \(buffers[i].values.count) values, the network's \(out[i].value.count)")
            }
            out[i].value.storage = buffers[i].values
        }
        return out
    }

    func run(_ network: inout any Network, train: LabeledDataset, rows: [Int]?, validation: LabeledDataset?,
             onStep: ((BatchRecord) -> Void)?, progress: (TrainingProgress) -> TrainingControl) throws(SlidingWindowError) -> TrainingReport {
        do { return try run(&network, train: train, rows: rows, validation: validation, resume: nil, checkpointing: nil, onStep: onStep, progress: progress) }
        catch let e as SlidingWindowError { throw e } catch { fatalError("unreachable: no checkpoint to refuse: \(error)") }
    }

    /// The training loop. `rows[i]` is the caller's row of training example i (nil: the identity).
    func run(_ network: inout any Network, train: LabeledDataset, rows: [Int]?, validation: LabeledDataset?,
             resume: TrainerState?, continuing: OptimizerState? = nil, checkpointing: Checkpointing?,
             onStep: ((BatchRecord) -> Void)?, progress: (TrainingProgress) -> TrainingControl) throws -> TrainingReport {
        try checkCapacity(network, trainingExamples: train.count)
        let clock = ContinuousClock(), start = clock.now
        let schedule = options.slidingWindow
        var optimizer = makeOptimizer(options.optimizer, learningRate: options.learningRate, weightDecay: options.weightDecay)
        var window = schedule.map {
            SlidingWindowOptimizer(learningRate: options.learningRate, weightDecay: options.weightDecay,
                                   width: $0.width, slide: $0.slide, start: $0.start)
        }
        let blocks = network.architecture.kind.blockCount
        let shuffle = !keepsOrder
        var rng = SeededRandom(seed: options.seed &+ 1)
        let n = train.count, bs = max(1, min(options.batchSize, n))
        let batches = (n + bs - 1) / bs
        var best: (loss: Float, epoch: Int, params: [Parameter], steps: Int, position: Double?, optimizer: OptimizerState?)? = nil
        var bestAccuracy: Float = -1, sinceLoss = 0, sinceAccuracy = 0
        var lastValidation: (loss: Float, accuracy: Float)? = nil
        var stepSeconds = 0.0, stepExamples = 0, steps = 0
        var columns: Range<Int>? = nil
        var epochsRun = 0, finalLoss: Float = .nan, stoppedEarly = false, cancelled = false
        var history: [EpochSummary] = []
        var firstEpoch = 1, firstBatch = 0
        var resumedOrder: [Int]? = nil
        var resumedSums: (loss: Double, correct: Int, seen: Int, targets: Int)? = nil

        if let s = resume {
            guard s.examples == n, s.batches == batches else {
                throw CheckpointError("the checkpoint was taken with \(s.examples) training examples in \(s.batches) batches; this run has \(n) in \(batches)")
            }
            guard (1...options.epochs).contains(s.epoch), (0..<batches).contains(s.batch), s.steps >= 0 else {
                throw CheckpointError("the checkpoint's position (epoch \(s.epoch), batch \(s.batch)) is outside this run")
            }
            guard let r = SeededRandom(state: s.random) else { throw CheckpointError("the checkpoint's random state is invalid") }
            let restored = try Self.parameters(network.parameters, with: s.parameters)
            guard Self.optimizerBuffersFit(s.optimizer.buffers, sets: s.optimizer.kind == "adam" ? 2 : 1, parameters: restored) else {
                throw CheckpointError("the checkpoint's optimizer state does not fit the network's parameters")
            }
            network.parameters = restored
            if window != nil { try window!.restore(s.optimizer) } else { try optimizer.restore(s.optimizer) }
            rng = r
            if let bp = s.bestParameters, let loss = s.bestLoss, let epoch = s.bestEpoch, let bsteps = s.bestSteps {
                best = (loss, epoch, try Self.parameters(restored, with: bp), bsteps, s.bestPosition, s.bestOptimizer)
            }
            bestAccuracy = s.bestAccuracy; sinceLoss = s.sinceLoss; sinceAccuracy = s.sinceAccuracy
            if let l = s.lastValidationLoss, let a = s.lastValidationAccuracy { lastValidation = (l, a) }
            stepSeconds = s.stepSeconds; stepExamples = s.stepExamples; steps = s.steps
            if let c = s.columns, c.count == 2, c[0] <= c[1] { columns = c[0]..<c[1] }
            epochsRun = s.epochsRun; finalLoss = s.finalLoss ?? .nan
            history = s.history ?? []
            firstEpoch = s.epoch; firstBatch = s.batch
            if s.batch > 0 {
                guard let order = s.order, order.count == n, Set(order).count == n, order.allSatisfy({ (0..<n).contains($0) }) else {
                    throw CheckpointError("a mid-epoch checkpoint needs the epoch's order of all \(n) examples")
                }
                resumedOrder = order
                resumedSums = (s.lossSum, s.correct, s.seen, s.targetsSeen)
            }
        } else if let o = continuing {
            // A follow-on run: the optimizer goes on from an earlier run's statistics (not the window's:
            // its state is tied to the schedule's position, which tasks carry themselves).
            guard window == nil else { throw CheckpointError("a sliding-window run cannot continue another run's optimizer state") }
            guard Self.optimizerBuffersFit(o.buffers, sets: o.kind == "adam" ? 2 : 1, parameters: network.parameters) else {
                throw CheckpointError("the stored optimizer state does not fit the network's parameters")
            }
            try optimizer.restore(o)
        }

        /// The loop's state with `epoch`/`batch` the next batch to run.
        func snapshot(epoch: Int, batch: Int, order: [Int]?, sums: (Double, Int, Int, Int)) -> TrainerState {
            TrainerState(epoch: epoch, batch: batch, steps: steps, examples: n, batches: batches,
                         parameters: network.parameters.map { FloatBuffer($0.value.storage) },
                         optimizer: window?.state ?? optimizer.state, random: rng.state, order: order,
                         lossSum: sums.0, correct: sums.1, seen: sums.2, targetsSeen: sums.3,
                         bestLoss: best?.loss, bestEpoch: best?.epoch, bestParameters: best?.params.map { FloatBuffer($0.value.storage) },
                         bestSteps: best?.steps, bestPosition: best?.position ?? nil, bestOptimizer: best?.optimizer ?? nil,
                         bestAccuracy: bestAccuracy, sinceLoss: sinceLoss, sinceAccuracy: sinceAccuracy,
                         lastValidationLoss: lastValidation?.loss, lastValidationAccuracy: lastValidation?.accuracy,
                         stepSeconds: stepSeconds, stepExamples: stepExamples,
                         columns: columns.map { [$0.lowerBound, $0.upperBound] }, epochsRun: epochsRun,
                         finalLoss: finalLoss.isNaN ? nil : finalLoss, history: history)
        }

        epochLoop: for epoch in firstEpoch...options.epochs {
            let resuming = epoch == firstEpoch && firstBatch > 0
            let order: [Int]
            if resuming, let o = resumedOrder { order = o } else {
                order = shuffle ? rng.permutation(n) : Array(0..<n)
                if schedule?.deterministic == true { window?.reset() }     // §3 deterministic mode
            }
            var lossSum: Double = 0, correct = 0, seen = 0, targetsSeen = 0
            if resuming, let r = resumedSums { (lossSum, correct, seen, targetsSeen) = r }
            let epochStart = clock.now
            for bi in (resuming ? firstBatch : 0)..<batches {
                let idx = order[(bi * bs)..<min(n, (bi + 1) * bs)]
                let win = window?.window
                if let win { columns = columns.map { min($0.lowerBound, win.lowerBound)..<max($0.upperBound, win.upperBound) } ?? win }
                var record = BatchRecord(step: steps, epoch: epoch, batchIndex: bi, exampleIndices: rows.map { r in idx.map { r[$0] } } ?? Array(idx),
                                         windows: win.map { Array(repeating: $0, count: blocks) } ?? [], skipped: false, loss: nil)
                steps += 1
                if schedule?.skipBatches.contains(bi) == true {
                    window?.stepWithoutUpdate()                             // §4: skip, keep the batch → column map
                    record.skipped = true
                    onStep?(record)
                    continue
                }
                let (x, labels) = train.batch(idx)
                let t0 = clock.now
                // The sliding window reads only its columns' gradients (§3), so only they are formed.
                let result = network.lossAndGradients(x: x, labels: labels, gradientColumns: win)
                var params = network.parameters
                if window != nil { try window!.stepChecked(&params, gradients: result.gradients) } else { optimizer.step(&params, gradients: result.gradients) }
                network.parameters = params
                stepSeconds += (clock.now - t0).seconds
                stepExamples += idx.count
                lossSum += Double(result.loss) * Double(idx.count)
                if let counts = result.targetCounts {
                    // Per-step labels: accuracy over every labelled step.
                    correct += counts.correct
                    targetsSeen += counts.total
                } else {
                    correct += zip(result.outputs.columnArgmax(), labels).filter { $0 == $1 }.count
                    targetsSeen += idx.count
                }
                seen += idx.count
                record.loss = result.loss
                onStep?(record)
                let elapsed = max((clock.now - epochStart).seconds, 1e-9)
                let report = TrainingProgress(
                    epoch: epoch, epochs: options.epochs, batch: bi + 1, batches: batches,
                    loss: Float(lossSum / Double(seen)), accuracy: Float(correct) / Float(max(1, targetsSeen)),
                    examplesPerSecond: Double(seen) / elapsed,
                    validationLoss: lastValidation?.loss, validationAccuracy: lastValidation?.accuracy)
                if progress(report) == .stop { cancelled = true; epochsRun = epoch; finalLoss = report.loss; break epochLoop }
                if bi + 1 < batches, let c = checkpointing, c.due(epoch, bi + 1, false) {
                    c.save(snapshot(epoch: epoch, batch: bi + 1, order: order, sums: (lossSum, correct, seen, targetsSeen)))
                }
            }
            epochsRun = epoch
            finalLoss = Float(lossSum / Double(max(1, seen)))
            let epochSeconds = max((clock.now - epochStart).seconds, 1e-9)
            var summary = EpochSummary(epoch: epoch, trainLoss: finalLoss, trainAccuracy: Float(correct) / Float(max(1, targetsSeen)),
                                       validationLoss: nil, validationAccuracy: nil,
                                       examplesPerSecond: resuming ? 0 : Double(seen) / epochSeconds,
                                       activeFraction: FISTAStatistics.lastTraining.map { $0.meanActiveFraction })
            var stopNow = false
            if let validation {
                let v = Self.evaluate(network, on: validation)
                summary.validationLoss = v.loss; summary.validationAccuracy = v.accuracy
                lastValidation = v
                if best == nil || v.loss < best!.loss {
                    best = (v.loss, epoch, network.parameters, steps, window?.position, window == nil ? optimizer.state : nil)
                    sinceLoss = 0
                } else { sinceLoss += 1 }
                if v.accuracy > bestAccuracy { bestAccuracy = v.accuracy; sinceAccuracy = 0 } else { sinceAccuracy += 1 }
                if let patience = options.earlyStoppingPatience, sinceLoss >= patience || sinceAccuracy >= patience {
                    stopNow = true
                }
            }
            history.append(summary)  // before the epoch's checkpoint, so a resumed run keeps the whole curve
            if stopNow {
                stoppedEarly = epoch < options.epochs  // the rule firing after the last epoch skipped nothing
                break
            }
            if epoch < options.epochs, let c = checkpointing, c.due(epoch, batches, true) {
                c.save(snapshot(epoch: epoch + 1, batch: 0, order: nil, sums: (0, 0, 0, 0)))
            }
        }
        if let best { network.parameters = best.params }
        let trainEval = Self.evaluate(network, on: train)
        let validationEval = validation.map { Self.evaluate(network, on: $0) }
        return TrainingReport(
            epochsRun: epochsRun, bestEpoch: best?.epoch ?? epochsRun, finalLoss: finalLoss,
            trainAccuracy: trainEval.accuracy, validationAccuracy: validationEval?.accuracy, validationLoss: validationEval?.loss,
            examplesPerSecond: stepSeconds > 0 ? Double(stepExamples) / stepSeconds : 0,
            seconds: (clock.now - start).seconds, stoppedEarly: stoppedEarly, cancelled: cancelled,
            keptSteps: best?.steps ?? steps, nextWindowStart: best.map { $0.position } ?? window?.position, windowColumns: columns,
            history: history, optimizerState: window != nil ? nil : best.map { $0.optimizer } ?? optimizer.state)
    }

    /// Mean loss and accuracy of `network` on `data`, in batches of `batchSize` to bound memory.
    public static func evaluate(_ network: any Network, on data: LabeledDataset, batchSize: Int = 500) -> (loss: Float, accuracy: Float) {
        guard data.count > 0 else { return (0, 0) }
        // Batches are weighted by their targets: examples, or labelled steps for per-step labels.
        var lossSum: Double = 0, correct: Double = 0, weight: Double = 0
        var start = 0
        while start < data.count {
            let end = min(data.count, start + batchSize)
            let (x, labels) = data.batch(start..<end)
            let r = network.evaluate(x: x, labels: labels)
            let w = Double(data.labelsPerExample > 1 ? labels.filter { $0 >= 0 }.count : end - start)
            lossSum += Double(r.loss) * w
            correct += Double(r.accuracy) * w
            weight += w
            start = end
        }
        return weight > 0 ? (Float(lossSum / weight), Float(correct / weight)) : (0, 0)
    }
}

extension Duration {
    /// The duration in seconds.
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
}
