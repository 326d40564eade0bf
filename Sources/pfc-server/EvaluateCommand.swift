import ArgumentParser
import Foundation
import Linalg
import PFC

/// `pfc-server evaluate`: accuracy and loss of a saved model on a CSV file.
struct EvaluateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "evaluate", abstract: "Evaluate a saved model on a CSV file.")

    @Option(help: "Model file written by `train`.") var model: String
    @Option(help: "CSV file to evaluate on.") var data: String
    @Option(help: "BLAS threads.") var threads: Int = ProcessInfo.processInfo.activeProcessorCount
    @Flag(help: "Print JSON on stdout.") var json = false

    func run() throws {
        try KernelCheck.requireRunnableKernels()
        ComputeThreads.set(threads)
        let network: any Network
        do { network = try ModelFile.read(path: model) } catch let e as ModelFileError {
            throw ValidationError("\(model): \(e)")
        }
        let arch = network.architecture
        let set = try readCSV(data, nonnegative: arch.nonnegative, classes: arch.outputDim, features: arch.featureCount)
        let (loss, accuracy) = Trainer.evaluate(network, on: set)
        if json {
            print("{\"accuracy\":\(accuracy),\"examples\":\(set.count),\"loss\":\(loss)}")
        } else {
            print(String(format: "%d examples: accuracy %.4f, loss %.5f", set.count, accuracy, loss))
        }
    }
}
