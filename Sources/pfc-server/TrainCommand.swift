import ArgumentParser
import Foundation
import Linalg
import PFC

/// `pfc-server train`: trains a model from CSV files without a server.
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a PFC, 2-block PFC or MLP classifier on a CSV file.",
        discussion: """
            CSV: one example per line, the integer label first, then the features; a header row is allowed.
            Progress goes to stderr; with --json, stdout gets one JSON summary object.
            """)

    @Option(help: "Training CSV file.") var data: String
    @Option(help: "Test CSV file, evaluated once after training.") var test: String?
    @Option(help: "Model kind: pfc, pfc2, mlp, factorized_rnn or rnn.") var model: ModelKind = .pfc
    @Option(name: .customLong("sequence-length"), help: "Recurrent kinds: steps T per row (the row's features are T steps of features/T).")
    var sequenceLength: Int?
    @Flag(inversion: .prefixedNo, help: "Recurrent kinds: backpropagate through time (else h_{t-1} is detached).") var bptt = true
    @Option(help: "Basis vectors K per block (the hidden width for mlp).") var basis: Int = 300
    @Option(help: "Unrolled FISTA iterations N.") var iterations: Int = 100
    @Option(help: "Mini-batch size.") var batch: Int = 200
    @Option(help: "Maximum epochs.") var epochs: Int = 10
    @Option(help: "Learning rate.") var lr: Float = 3e-4
    @Option(name: .customLong("weight-decay"), help: "Decoupled per-step weight decay.") var weightDecay: Float = 1e-4
    @Option(help: "Loss: labels_mse, images_labels_mse or cross_entropy.") var loss: LossKind = .labelsMSE
    @Option(help: "Optimizer: rmsprop or adam.") var optimizer: OptimizerKind = .rmsprop
    @Option(help: "Seed of initialisation, split and shuffling.") var seed: UInt64 = 0
    @Option(help: "BLAS threads.") var threads: Int = ProcessInfo.processInfo.activeProcessorCount
    @Option(name: .customLong("validation-fraction"), help: "Fraction of the training data held out for validation.")
    var validationFraction: Double = 0.15
    @Option(help: "Early-stopping patience in epochs (0 turns it off).") var patience: Int = 20
    @Flag(help: "Allow negative weights (semi-NMF); h stays non-negative.") var signed = false
    @Option(help: "Where to write the trained model.") var out: String
    @Flag(help: "Print a JSON summary on stdout.") var json = false

    func run() throws {
        try KernelCheck.requireRunnableKernels()
        ComputeThreads.set(threads)
        let nonnegative = model != .mlp && model != .rnn && !signed
        let train = try readCSV(data, nonnegative: nonnegative, classes: nil, features: nil)
        let steps = sequenceLength ?? 1
        if model.isSequence {
            guard let t = sequenceLength, t >= 1, train.featureCount % t == 0 else {
                throw ValidationError("--sequence-length T is required for \(model.rawValue) and must divide the \(train.featureCount) features")
            }
        } else if sequenceLength != nil {
            throw ValidationError("--sequence-length applies to factorized_rnn and rnn only")
        }
        var arch = Architecture(kind: model, inputDim: train.featureCount / steps, outputDim: max(2, train.classes), basis: basis,
                                iterations: iterations, loss: loss, nonnegative: nonnegative)
        arch.sequenceLength = steps
        arch.bptt = bptt
        if let problem = arch.validationProblem() { throw ValidationError(problem) }
        let testSet = try test.map { try readCSV($0, nonnegative: nonnegative, classes: arch.outputDim, features: arch.featureCount) }

        var options = TrainingOptions()
        options.epochs = epochs
        options.batchSize = batch
        options.learningRate = lr
        options.weightDecay = weightDecay
        options.optimizer = optimizer
        options.validationFraction = validationFraction
        options.earlyStoppingPatience = patience > 0 ? patience : nil
        options.seed = seed
        if let problem = options.validationProblem() { throw ValidationError(problem) }

        var network = NetworkFactory.make(arch, seed: seed)
        var lastPrinted = -1
        let report = Trainer(options: options).train(&network, on: train) { p in
            if p.batch == p.batches || p.epoch != lastPrinted {
                lastPrinted = p.epoch
                let v = p.validationAccuracy.map { String(format: " val_acc %.4f", $0) } ?? ""
                FileHandle.standardError.write(Data(String(format: "epoch %d/%d batch %d/%d loss %.5f acc %.4f%@ %.0f ex/s\n",
                    p.epoch, p.epochs, p.batch, p.batches, p.loss, p.accuracy, v, p.examplesPerSecond).utf8))
            }
            return .proceed
        }
        let testAccuracy = testSet.map { Trainer.evaluate(network, on: $0).accuracy }
        try ModelFile.write(network, to: out)
        let summary = TrainSummary(report: report, testAccuracy: testAccuracy, model: out, architecture: arch)
        if json {
            print(String(decoding: try summary.jsonData(), as: UTF8.self))
        } else {
            print(String(format: "trained %@ in %.1f s: train %.4f, validation %@, test %@ -> %@", model.rawValue, report.seconds,
                         report.trainAccuracy, report.validationAccuracy.map { String(format: "%.4f", $0) } ?? "n/a",
                         testAccuracy.map { String(format: "%.4f", $0) } ?? "n/a", out))
        }
    }
}

/// The JSON summary `train --json` prints.
struct TrainSummary: Encodable {
    let report: TrainingReport
    let testAccuracy: Float?
    let model: String
    let architecture: Architecture

    enum CodingKeys: String, CodingKey {
        case examplesPerSecond = "examples_per_second", trainAccuracy = "train_accuracy"
        case validationAccuracy = "validation_accuracy", testAccuracy = "test_accuracy", finalLoss = "final_loss"
        case epochsRun = "epochs_run", bestEpoch = "best_epoch", seconds, stoppedEarly = "stopped_early", model, architecture
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(report.examplesPerSecond, forKey: .examplesPerSecond)
        try c.encode(report.trainAccuracy, forKey: .trainAccuracy)
        try c.encode(report.validationAccuracy, forKey: .validationAccuracy) // null without validation
        try c.encode(testAccuracy, forKey: .testAccuracy)                    // null without --test
        try c.encode(report.finalLoss, forKey: .finalLoss)
        try c.encode(report.epochsRun, forKey: .epochsRun)
        try c.encode(report.bestEpoch, forKey: .bestEpoch)
        try c.encode(report.seconds, forKey: .seconds)
        try c.encode(report.stoppedEarly, forKey: .stoppedEarly)
        try c.encode(model, forKey: .model)
        try c.encode(architecture, forKey: .architecture)
    }

    func jsonData() throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try e.encode(self)
    }
}

/// Reads a CSV data set, turning a data problem into a clean CLI error naming file, line and reason.
func readCSV(_ path: String, nonnegative: Bool, classes: Int?, features: Int?) throws -> LabeledDataset {
    do {
        return try CSVDatasetReader.read(path: path, rules: .init(requireNonNegative: nonnegative, classes: classes, featureCount: features))
    } catch let e as DatasetError {
        throw ValidationError("\(path):\(e.line)\(e.column.map { ":\($0)" } ?? ""): \(e.reason)")
    }
}

extension ModelKind: ExpressibleByArgument {}
extension LossKind: ExpressibleByArgument {}
extension OptimizerKind: ExpressibleByArgument {}
