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

    /// Options with the defaults above.
    public init() {}

    /// Checks the options; returns a message naming the problem, or nil.
    public func validationProblem() -> String? {
        if epochs < 1 { return "epochs must be at least 1" }
        if batchSize < 1 { return "batch_size must be at least 1" }
        if !(learningRate > 0) || !learningRate.isFinite { return "learning_rate must be a positive number" }
        if !(weightDecay >= 0) || weightDecay >= 1 { return "weight_decay must be in [0, 1)" }
        if !(validationFraction >= 0 && validationFraction < 1) { return "validation_fraction must be in [0, 1)" }
        if let p = earlyStoppingPatience, p < 1 { return "early_stopping patience must be at least 1" }
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

    enum CodingKeys: String, CodingKey {
        case epoch, epochs, batch, batches, loss, accuracy
        case examplesPerSecond = "examples_per_second", validationLoss = "validation_loss", validationAccuracy = "validation_accuracy"
    }
}

/// What a progress callback tells the trainer.
public enum TrainingControl: Sendable { case proceed, stop }

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
    /// Stopped by the early-stopping rule.
    public var stoppedEarly: Bool
    /// Stopped because the progress callback asked.
    public var cancelled: Bool

    enum CodingKeys: String, CodingKey {
        case epochsRun = "epochs_run", bestEpoch = "best_epoch", finalLoss = "final_loss", trainAccuracy = "train_accuracy"
        case validationAccuracy = "validation_accuracy", validationLoss = "validation_loss"
        case examplesPerSecond = "examples_per_second", seconds, stoppedEarly = "stopped_early", cancelled
    }
}

/// Fits a network to a labelled data set.
public struct Trainer: Sendable {
    /// The options of every run.
    public var options: TrainingOptions

    /// A trainer.
    public init(options: TrainingOptions) { self.options = options }

    /// Trains `network` in place on `data`, holding out `options.validationFraction` for validation.
    /// At the end the network holds the best-validation-loss checkpoint.
    public func train(_ network: inout any Network, on data: LabeledDataset,
                      progress: (TrainingProgress) -> TrainingControl = { _ in .proceed }) -> TrainingReport {
        let (trainSet, validationSet): (LabeledDataset, LabeledDataset?)
        if options.validationFraction > 0 && data.count >= 2 {
            let (a, b) = data.split(fraction: options.validationFraction, seed: options.seed)
            (trainSet, validationSet) = (a, b.count > 0 ? b : nil)
        } else {
            (trainSet, validationSet) = (data, nil)
        }
        return train(&network, train: trainSet, validation: validationSet, progress: progress)
    }

    /// Trains on `train`, selecting the checkpoint and stopping early on `validation` when given.
    public func train(_ network: inout any Network, train: LabeledDataset, validation: LabeledDataset?,
                      progress: (TrainingProgress) -> TrainingControl = { _ in .proceed }) -> TrainingReport {
        let clock = ContinuousClock(), start = clock.now
        var optimizer = makeOptimizer(options.optimizer, learningRate: options.learningRate, weightDecay: options.weightDecay)
        var rng = SeededRandom(seed: options.seed &+ 1)
        let n = train.count, bs = max(1, min(options.batchSize, n))
        let batches = (n + bs - 1) / bs
        var best: (loss: Float, epoch: Int, params: [Parameter])? = nil
        var bestAccuracy: Float = -1, sinceLoss = 0, sinceAccuracy = 0
        var lastValidation: (loss: Float, accuracy: Float)? = nil
        var stepSeconds = 0.0, stepExamples = 0
        var epochsRun = 0, finalLoss: Float = .nan, stoppedEarly = false, cancelled = false

        epochLoop: for epoch in 1...options.epochs {
            let order = options.shuffle ? rng.permutation(n) : Array(0..<n)
            var lossSum: Double = 0, correct = 0, seen = 0
            let epochStart = clock.now
            for bi in 0..<batches {
                let idx = order[(bi * bs)..<min(n, (bi + 1) * bs)]
                let (x, labels) = train.batch(idx)
                let t0 = clock.now
                let result = network.lossAndGradients(x: x, labels: labels)
                var params = network.parameters
                optimizer.step(&params, gradients: result.gradients)
                network.parameters = params
                stepSeconds += (clock.now - t0).seconds
                stepExamples += idx.count
                lossSum += Double(result.loss) * Double(idx.count)
                correct += zip(result.outputs.columnArgmax(), labels).filter { $0 == $1 }.count
                seen += idx.count
                let elapsed = max((clock.now - epochStart).seconds, 1e-9)
                let report = TrainingProgress(
                    epoch: epoch, epochs: options.epochs, batch: bi + 1, batches: batches,
                    loss: Float(lossSum / Double(seen)), accuracy: Float(correct) / Float(seen),
                    examplesPerSecond: Double(seen) / elapsed,
                    validationLoss: lastValidation?.loss, validationAccuracy: lastValidation?.accuracy)
                if progress(report) == .stop { cancelled = true; epochsRun = epoch; finalLoss = report.loss; break epochLoop }
            }
            epochsRun = epoch
            finalLoss = Float(lossSum / Double(max(1, seen)))
            guard let validation else { continue }
            let v = Self.evaluate(network, on: validation)
            lastValidation = v
            if best == nil || v.loss < best!.loss {
                best = (v.loss, epoch, network.parameters)
                sinceLoss = 0
            } else { sinceLoss += 1 }
            if v.accuracy > bestAccuracy { bestAccuracy = v.accuracy; sinceAccuracy = 0 } else { sinceAccuracy += 1 }
            if let patience = options.earlyStoppingPatience, sinceLoss >= patience || sinceAccuracy >= patience {
                stoppedEarly = true
                break
            }
        }
        if let best { network.parameters = best.params }
        let trainEval = Self.evaluate(network, on: train)
        let validationEval = validation.map { Self.evaluate(network, on: $0) }
        return TrainingReport(
            epochsRun: epochsRun, bestEpoch: best?.epoch ?? epochsRun, finalLoss: finalLoss,
            trainAccuracy: trainEval.accuracy, validationAccuracy: validationEval?.accuracy, validationLoss: validationEval?.loss,
            examplesPerSecond: stepSeconds > 0 ? Double(stepExamples) / stepSeconds : 0,
            seconds: (clock.now - start).seconds, stoppedEarly: stoppedEarly, cancelled: cancelled)
    }

    /// Mean loss and accuracy of `network` on `data`, in batches of `batchSize` to bound memory.
    public static func evaluate(_ network: any Network, on data: LabeledDataset, batchSize: Int = 500) -> (loss: Float, accuracy: Float) {
        guard data.count > 0 else { return (0, 0) }
        var lossSum: Double = 0, correct: Double = 0
        var start = 0
        while start < data.count {
            let end = min(data.count, start + batchSize)
            let (x, labels) = data.batch(start..<end)
            let r = network.evaluate(x: x, labels: labels)
            lossSum += Double(r.loss) * Double(end - start)
            correct += Double(r.accuracy) * Double(end - start)
            start = end
        }
        return (Float(lossSum / Double(data.count)), Float(correct / Double(data.count)))
    }
}

extension Duration {
    /// The duration in seconds.
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
}
