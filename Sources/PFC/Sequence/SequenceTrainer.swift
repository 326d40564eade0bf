// SequenceTrainer: epochs of mini-batches of sequences, with validation, the best-validation
// checkpoint, progress reports and evaluation, for gradient-trained and NMF-trained sequence models.
import Linalg

/// A model over sequences of d×B steps that predicts C×B outputs at every step.
public protocol SequenceModel: Sendable {
    /// Outputs y_t (C×B) for every step of `steps` (each d×B).
    func predict(_ steps: [Matrix]) -> [Matrix]
    /// One learning step on `batch`; returns the training loss and the outputs it saw.
    /// Gradient models apply `optimizer`; NMF-trained models ignore it.
    mutating func learn(_ batch: SequenceBatch, optimizer: inout any Optimizer) -> (loss: Float, outputs: [Matrix])
}

/// Loss, per-step outputs and gradients of one batch; `gradients` align with `parameters`.
public struct SequenceGradients: Sendable {
    /// Scalar training loss.
    public var loss: Float
    /// y_t (C×B) for every step.
    public var outputs: [Matrix]
    /// ∂loss/∂parameter.
    public var gradients: [Matrix]
}

/// A sequence model trained by backprop through a hand-written backward pass.
public protocol GradientSequenceModel: SequenceModel {
    /// All trainable matrices, in a fixed order.
    var parameters: [Parameter] { get set }
    /// The training loss and its gradients on `batch`.
    func lossAndGradients(_ batch: SequenceBatch) -> SequenceGradients
}

extension GradientSequenceModel {
    /// Computes the gradients and applies one optimizer step (which also clips non-negative weights).
    public mutating func learn(_ batch: SequenceBatch, optimizer: inout any Optimizer) -> (loss: Float, outputs: [Matrix]) {
        let r = lossAndGradients(batch)
        var p = parameters
        optimizer.step(&p, gradients: r.gradients)
        parameters = p
        return (r.loss, r.outputs)
    }
}

/// How to train a sequence model.
public struct SequenceTrainingOptions: Sendable, Equatable {
    /// Maximum number of epochs.
    public var epochs: Int = 20
    /// Sequences per mini-batch.
    public var batchSize: Int = 100
    /// RMSprop step size (research/pfc.md §2.2 uses 5e-5 on MNIST; small data sets need more).
    public var learningRate: Float = 1e-3
    /// Decoupled per-step decay (§2.2: 1e-5).
    public var weightDecay: Float = 1e-5
    /// Fraction of the training data held out for validation; 0 disables validation.
    public var validationFraction: Double = 0.15
    /// Stop after this many epochs without a better validation accuracy; nil never stops early.
    public var earlyStoppingPatience: Int? = 10
    /// Seed of the split and the shuffles.
    public var seed: UInt64 = 0

    /// Options with the defaults above.
    public init() {}
}

/// The outcome of a sequence training run.
public struct SequenceTrainingReport: Sendable, Equatable {
    /// Epochs actually run.
    public var epochsRun: Int
    /// Epoch whose parameters were kept (best validation accuracy; the last epoch without validation).
    public var bestEpoch: Int
    /// Mean training loss of the last epoch.
    public var trainLoss: Float
    /// Training accuracy of the last epoch (over all targets seen).
    public var trainAccuracy: Float
    /// Validation accuracy of the kept parameters.
    public var validationAccuracy: Float?
    /// Wall-clock seconds.
    public var seconds: Double
    /// Whether the progress callback stopped the run.
    public var cancelled: Bool
}

/// Trains `SequenceModel`s with the paper's RMSprop (research/pfc.md §1.3).
public struct SequenceTrainer: Sendable {
    /// The options.
    public var options: SequenceTrainingOptions

    /// A trainer.
    public init(options: SequenceTrainingOptions) { self.options = options }

    /// Splits `data` for validation (per `options.validationFraction`) and trains.
    public func train<M: SequenceModel>(_ model: inout M, on data: SequenceDataset,
                                        progress: ((TrainingProgress) -> TrainingControl)? = nil) -> SequenceTrainingReport {
        if options.validationFraction > 0 {
            let (tr, va) = data.split(fraction: options.validationFraction, seed: options.seed)
            return train(&model, train: tr, validation: va, progress: progress)
        }
        return train(&model, train: data, validation: nil, progress: progress)
    }

    /// Trains on `train`, keeping the parameters of the epoch with the best accuracy on `validation`.
    public func train<M: SequenceModel>(_ model: inout M, train: SequenceDataset, validation: SequenceDataset?,
                                        progress: ((TrainingProgress) -> TrainingControl)? = nil) -> SequenceTrainingReport {
        // Without a state to resume from, nothing can be refused.
        (try? run(&model, train: train, validation: validation, resume: nil, checkpoint: nil, access: nil, progress: progress))
            ?? SequenceTrainingReport(epochsRun: 0, bestEpoch: 0, trainLoss: 0, trainAccuracy: 0, validationAccuracy: nil, seconds: 0, cancelled: true)
    }

    /// `train(_:train:validation:progress:)` for gradient-trained models that continues from `state`
    /// (nil: from the start) and hands `checkpoint` the loop's state after every epoch (research/pfc.md
    /// §6 loop: weights, RMSprop statistics, shuffle RNG, best-validation snapshot and counter). A run
    /// resumed from any of those states ends with the weights of the run that never stopped, bit for
    /// bit. Throws `CheckpointError` when `state` does not fit the model or data.
    public func train<M: GradientSequenceModel>(_ model: inout M, train: SequenceDataset, validation: SequenceDataset?,
                                                resumingFrom state: TrainerState?, checkpoint: ((TrainerState) -> Void)?,
                                                progress: ((TrainingProgress) -> TrainingControl)? = nil) throws -> SequenceTrainingReport {
        try run(&model, train: train, validation: validation, resume: state, checkpoint: checkpoint,
                access: ({ $0.parameters }, { $0.parameters = $1 }), progress: progress)
    }

    func run<M: SequenceModel>(_ model: inout M, train: SequenceDataset, validation: SequenceDataset?,
                               resume: TrainerState?, checkpoint: ((TrainerState) -> Void)?,
                               access: ((M) -> [Parameter], (inout M, [Parameter]) -> Void)?,
                               progress: ((TrainingProgress) -> TrainingControl)?) throws -> SequenceTrainingReport {
        let clock = ContinuousClock(), start = clock.now
        var optimizer: any Optimizer = RMSprop(learningRate: options.learningRate, weightDecay: options.weightDecay)
        var rng = SeededRandom(seed: options.seed &+ 1)
        let bs = max(1, options.batchSize)
        let batches = (train.count + bs - 1) / bs
        var best: (model: M, accuracy: Float, epoch: Int)? = nil
        var report = SequenceTrainingReport(epochsRun: 0, bestEpoch: 0, trainLoss: 0, trainAccuracy: 0,
                                            validationAccuracy: nil, seconds: 0, cancelled: false)
        var lastVal: (loss: Float, accuracy: Float)? = nil
        var firstEpoch = 1
        if let s = resume, let (get, set) = access {
            guard s.examples == train.count, s.batches == batches, s.batch == 0, (1...max(1, options.epochs)).contains(s.epoch) else {
                throw CheckpointError("the checkpoint (epoch \(s.epoch), \(s.examples) examples) does not fit this run")
            }
            guard let r = SeededRandom(state: s.random) else { throw CheckpointError("the checkpoint's random state is invalid") }
            let params = try Trainer.parameters(get(model), with: s.parameters)
            guard s.optimizer.buffers.isEmpty || zip(s.optimizer.buffers, params).allSatisfy({ $0.values.count == $1.value.count })
                    && s.optimizer.buffers.count == params.count else {
                throw CheckpointError("the checkpoint's optimizer state does not fit the model's parameters")
            }
            try optimizer.restore(s.optimizer)
            set(&model, params)
            rng = r
            if let bp = s.bestParameters, let epoch = s.bestEpoch {
                var m = model
                set(&m, try Trainer.parameters(params, with: bp))
                best = (m, s.bestAccuracy, epoch)
            }
            if let l = s.lastValidationLoss, let a = s.lastValidationAccuracy { lastVal = (l, a) }
            report.epochsRun = s.epochsRun
            firstEpoch = s.epoch
        }
        epochs: for epoch in firstEpoch...max(1, options.epochs) {
            let order = rng.permutation(train.count)
            var lossSum: Double = 0, right = 0, total = 0
            let epochStart = clock.now
            for bi in 0..<batches {
                let idx = order[(bi * bs)..<min(train.count, (bi + 1) * bs)]
                let batch = train.batch(idx)
                let (loss, outputs) = model.learn(batch, optimizer: &optimizer)
                lossSum += Double(loss) * Double(idx.count)
                let (r, n) = SequenceLosses.correct(outputs: outputs, targets: batch.targets)
                right += r; total += n
                if let progress {
                    let seen = min(train.count, (bi + 1) * bs)
                    let p = TrainingProgress(epoch: epoch, epochs: options.epochs, batch: bi + 1, batches: batches,
                                             loss: Float(lossSum / Double(seen)), accuracy: Float(right) / Float(max(1, total)),
                                             examplesPerSecond: Double(seen) / max(1e-9, (clock.now - epochStart).seconds),
                                             validationLoss: lastVal?.loss, validationAccuracy: lastVal?.accuracy)
                    if progress(p) == .stop { report.cancelled = true; break epochs }
                }
            }
            report.epochsRun = epoch
            report.trainLoss = Float(lossSum / Double(max(1, train.count)))
            report.trainAccuracy = Float(right) / Float(max(1, total))
            if let validation {
                let v = Self.evaluate(model, on: validation)
                lastVal = v
                if best == nil || v.accuracy > best!.accuracy { best = (model, v.accuracy, epoch) }
                if let patience = options.earlyStoppingPatience, epoch - best!.epoch >= patience { break }
            } else { report.bestEpoch = epoch }
            if epoch < options.epochs, let checkpoint, let (get, _) = access {
                checkpoint(TrainerState(epoch: epoch + 1, batch: 0, steps: epoch * batches, examples: train.count, batches: batches,
                                        parameters: get(model).map { FloatBuffer($0.value.storage) }, optimizer: optimizer.state,
                                        random: rng.state, order: nil,
                                        bestEpoch: best?.epoch,
                                        bestParameters: best.map { get($0.model).map { FloatBuffer($0.value.storage) } },
                                        bestAccuracy: best?.accuracy ?? -1,
                                        lastValidationLoss: lastVal?.loss, lastValidationAccuracy: lastVal?.accuracy,
                                        epochsRun: report.epochsRun))
            }
        }
        if let best {
            model = best.model
            report.bestEpoch = best.epoch
            report.validationAccuracy = best.accuracy
        }
        report.seconds = (clock.now - start).seconds
        return report
    }

    /// Label loss (`SequenceLosses.labelMSE`, batch-weighted mean) and accuracy over all targets of `data`.
    public static func evaluate<M: SequenceModel>(_ model: M, on data: SequenceDataset, batchSize: Int = 500) -> (loss: Float, accuracy: Float) {
        var lossSum: Double = 0, right = 0, total = 0
        var start = 0
        while start < data.count {
            let end = min(data.count, start + batchSize)
            let batch = data.batch(start..<end)
            let out = model.predict(batch.steps)
            lossSum += Double(SequenceLosses.labelMSE(outputs: out, targets: batch.targets).loss) * Double(end - start)
            let (r, n) = SequenceLosses.correct(outputs: out, targets: batch.targets)
            right += r; total += n
            start = end
        }
        return (Float(lossSum / Double(max(1, data.count))), Float(right) / Float(max(1, total)))
    }
}
