// TrainerState: everything the training loop holds between two mini-batches, as a Codable value, so a
// run can stop (a dead worker, a lost lease) and another process can continue it from the last
// checkpoint. Resuming from a state and running to the end gives bit for bit the weights of the run
// that never stopped: the loop's whole state is here (research/pfc.md §6 "Training loop": the
// best-validation-loss checkpoint and both early-stopping counters; §1.3 and §3: the RMSprop /
// sliding-window statistics and the window position p; the shuffle RNG).
import Foundation
import Linalg

/// Floats stored as their little-endian bytes (exact; JSON carries them as base64).
public struct FloatBuffer: Sendable, Equatable, Codable {
    public var values: [Float]

    public init(_ values: [Float]) { self.values = values }

    public init(from decoder: any Decoder) throws {
        let data = try decoder.singleValueContainer().decode(Data.self)
        guard data.count % 4 == 0 else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "float buffer of \(data.count) bytes"))
        }
        var out = [Float](repeating: 0, count: data.count / 4)
        out.withUnsafeMutableBytes { dst in data.withUnsafeBytes { src in dst.copyMemory(from: src) } }
        #if _endian(big)
        for i in out.indices { out[i] = Float(bitPattern: UInt32(littleEndian: out[i].bitPattern)) }
        #endif
        values = out
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        #if _endian(big)
        let le = values.map { Float(bitPattern: $0.bitPattern.littleEndian) }
        #else
        let le = values
        #endif
        try c.encode(le.withUnsafeBytes { Data($0) })
    }
}

/// An optimizer's running statistics (research/pfc.md §1.3, §3): RMSprop's mean squares, Adam's
/// moments and step count, the sliding window's statistics and steps since its last reset.
public struct OptimizerState: Sendable, Equatable, Codable {
    /// `rmsprop`, `adam` or `sliding_window`.
    public var kind: String
    /// Per-parameter buffers: [ms] for RMSprop and the window, [m…, v…] for Adam.
    public var buffers: [FloatBuffer]
    /// Adam's t; the window's steps since its reset (its position is start + s·steps).
    public var steps: Int

    public init(kind: String, buffers: [FloatBuffer], steps: Int) {
        self.kind = kind
        self.buffers = buffers
        self.steps = steps
    }
}

/// Why a checkpoint cannot continue this run.
public struct CheckpointError: Error, Sendable, Equatable, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

/// The training loop's state between two mini-batches.
public struct TrainerState: Sendable, Equatable, Codable {
    /// Format of this value; a different one is refused.
    public static let formatVersion = 1
    public var format = TrainerState.formatVersion

    /// 1-based epoch of the next batch to run.
    public var epoch: Int
    /// 0-based batch (within `epoch`) to run next; 0 at an epoch boundary.
    public var batch: Int
    /// Optimizer steps taken so far (skipped batches counted), the `step` of the next `BatchRecord`.
    public var steps: Int
    /// Shape checks: training examples and batches per epoch of the run that saved this.
    public var examples: Int
    public var batches: Int

    /// The network's parameters, in `Network.parameters` order.
    public var parameters: [FloatBuffer]
    public var optimizer: OptimizerState
    /// The shuffle generator (xoshiro256** words), after this epoch's permutation was drawn.
    public var random: [UInt64]
    /// This epoch's order of the training examples (mid-epoch states only).
    public var order: [Int]?

    /// Running sums of the current epoch (mid-epoch states only; zero at a boundary).
    public var lossSum: Double = 0
    public var correct = 0
    public var seen = 0
    public var targetsSeen = 0

    /// The best-validation-loss snapshot (§6: the model used for test).
    public var bestLoss: Float?
    public var bestEpoch: Int?
    public var bestParameters: [FloatBuffer]?
    public var bestSteps: Int?
    public var bestPosition: Double?
    /// The optimizer's statistics at the best snapshot (nil in states written before it existed).
    public var bestOptimizer: OptimizerState? = nil
    /// Early stopping: best accuracy and the epochs since loss / accuracy last improved.
    public var bestAccuracy: Float = -1
    public var sinceLoss = 0
    public var sinceAccuracy = 0
    public var lastValidationLoss: Float?
    public var lastValidationAccuracy: Float?

    /// Throughput so far (reported, not needed for the weights).
    public var stepSeconds = 0.0
    public var stepExamples = 0
    /// The union of the windows used so far, [lower, upper).
    public var columns: [Int]?
    public var epochsRun = 0
    public var finalLoss: Float?
    /// The finished epochs' summaries (the learning curve so far); nil in states written before it existed.
    public var history: [EpochSummary]? = nil

    /// The state as bytes (JSON; the float buffers exact).
    public func encoded() throws -> Data { try JSONEncoder().encode(self) }

    /// A state from `encoded()`'s bytes.
    public static func decode(_ data: Data) throws -> TrainerState {
        let s = try JSONDecoder().decode(TrainerState.self, from: data)
        guard s.format == formatVersion else { throw CheckpointError("trainer state format \(s.format), expected \(formatVersion)") }
        return s
    }
}
