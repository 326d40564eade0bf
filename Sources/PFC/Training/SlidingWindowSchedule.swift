// SlidingWindowSchedule and BatchRecord: how the trainer runs the sliding learnable window and what
// it reports about every optimizer step (the batch → column map of research/pfc.md §3–§4).

/// Sliding-learnable-window training (research/pfc.md §3). Set `TrainingOptions.slidingWindow` to
/// train with `SlidingWindowOptimizer` instead of `TrainingOptions.optimizer`.
public struct SlidingWindowSchedule: Sendable, Codable, Equatable {
    /// Window width w in columns (paper: 15 for Split MNIST, 50 for the deterministic mode).
    public var width: Int
    /// Columns the window moves after every step, s (paper: 0.25 or 2.5).
    public var slide: Double
    /// Float start column of the first step (`start_col_f0`); a next task passes the previous
    /// report's `nextWindowStart` so the window keeps sliding across tasks (§3.1).
    public var start: Double
    /// Deterministic-window mode (§3, §4): a fixed data order and the window reset to `start` at the
    /// start of every epoch, so batch j of every epoch trains [⌊start + s·j⌋, ⌊start + s·j + w⌋).
    public var deterministic: Bool
    /// Batch indices (0-based, within every epoch) that advance the window without an update
    /// (`step_without_update`, §4): skipped, but the batch → column map is kept.
    public var skipBatches: Set<Int>

    /// A schedule.
    public init(width: Int, slide: Double, start: Double = 0, deterministic: Bool = false, skipBatches: Set<Int> = []) {
        self.width = width
        self.slide = slide
        self.start = start
        self.deterministic = deterministic
        self.skipBatches = skipBatches
    }

    enum CodingKeys: String, CodingKey {
        case width, slide, start, deterministic
        case skipBatches = "skip_batches"
    }

    /// Optimizer steps (with or without update) a run takes from the window's start to its last
    /// window: one epoch's batches in deterministic mode (the window resets each epoch), all epochs' otherwise.
    public func windowSteps(epochs: Int, batchesPerEpoch: Int) -> Int {
        deterministic ? batchesPerEpoch : epochs * batchesPerEpoch
    }

    /// The basis size K a run of `epochs` × `batchesPerEpoch` steps needs (see `SlidingWindowOptimizer.requiredBasis`).
    public func requiredBasis(epochs: Int, batchesPerEpoch: Int) -> Int {
        SlidingWindowOptimizer.requiredBasis(start: start, width: width, slide: slide,
                                             steps: windowSteps(epochs: epochs, batchesPerEpoch: batchesPerEpoch))
    }

    /// The window of batch `batchIndex` of epoch `epoch` (1-based) of a run with `batchesPerEpoch` batches.
    public func window(epoch: Int, batchIndex: Int, batchesPerEpoch: Int) -> Range<Int> {
        let step = deterministic ? batchIndex : (epoch - 1) * batchesPerEpoch + batchIndex
        return SlidingWindowOptimizer.window(start: start, width: width, slide: slide, step: step)
    }

    /// A message naming the problem, or nil.
    public func validationProblem() -> String? {
        if let why = SlidingWindowOptimizer.scheduleProblem(width: width, slide: slide, start: start) { return why }
        if skipBatches.contains(where: { $0 < 0 }) { return "skip_batches must be batch indices ≥ 0" }
        return nil
    }
}

/// One optimizer step of a training run, reported through the trainer's `onStep` callback: enough
/// for a batch ledger (which examples, which columns) and for forgetting them later (§4).
public struct BatchRecord: Sendable, Codable, Equatable {
    /// 0-based step within this run, counting skipped batches.
    public var step: Int
    /// 1-based epoch.
    public var epoch: Int
    /// 0-based batch within the epoch.
    public var batchIndex: Int
    /// The batch's examples as row indices into the data set the caller passed: for
    /// `train(_:on:…)` the rows of `data` **before** the validation split (the trainer maps through
    /// the split); for `train(_:train:validation:…)` the rows of `train`.
    public var exampleIndices: [Int]
    /// The learnable window [c0, c1) of every PFC block (both blocks of `pfc2` share it); empty
    /// without a sliding window, where every column learned.
    public var windows: [Range<Int>]
    /// The batch advanced the window without an update (`SlidingWindowSchedule.skipBatches`).
    public var skipped: Bool
    /// Training loss of the batch (nil when skipped).
    public var loss: Float?

    /// A record.
    public init(step: Int, epoch: Int, batchIndex: Int, exampleIndices: [Int], windows: [Range<Int>], skipped: Bool, loss: Float?) {
        self.step = step
        self.epoch = epoch
        self.batchIndex = batchIndex
        self.exampleIndices = exampleIndices
        self.windows = windows
        self.skipped = skipped
        self.loss = loss
    }

    enum CodingKeys: String, CodingKey {
        case step, epoch, windows, skipped, loss
        case batchIndex = "batch_index", exampleIndices = "example_indices"
    }
}

extension ModelKind {
    /// PFC blocks in a network of this kind (0 for the MLP, which the sliding window cannot train).
    public var blockCount: Int {
        switch self {
        case .pfc: return 1
        case .pfc2: return 2
        case .mlp, .factorizedRNN, .rnn: return 0
        }
    }
}
