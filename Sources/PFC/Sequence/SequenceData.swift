// SequenceData: data sets whose examples are T steps of d features, with a label per sequence or
// per step, batched into T matrices of d×B (one column per example, research/pfc.md §1.1 layout).
import Linalg

/// A sequence classification data set. Example i is row i of `features`: T·d numbers, step after
/// step (step t is `features[i, t·d ..< (t+1)·d]`).
///
/// Labels are either one per sequence (predicted at the last step) or one per step; a per-step label
/// of `SequenceDataset.noTarget` (−1) marks a step without a target.
public struct SequenceDataset: Sendable, Equatable {
    /// Marks a step without a target in per-step labels.
    public static let noTarget = -1
    /// n × (T·d) features, one sequence per row.
    public var features: Matrix
    /// Steps per sequence T.
    public let sequenceLength: Int
    /// Features per step d.
    public let stepFeatures: Int
    /// n labels (per sequence) or n·T labels (per step, row-major: sequence i, step t at i·T + t).
    public var labels: [Int]
    /// Whether `labels` has one entry per step.
    public let labelsPerStep: Bool
    /// Number of classes.
    public let classes: Int

    /// A data set; `classes` defaults to max(label) + 1.
    public init(features: Matrix, sequenceLength: Int, stepFeatures: Int, labels: [Int], labelsPerStep: Bool = false,
                classes: Int? = nil) {
        precondition(sequenceLength >= 1 && stepFeatures >= 1, "T and d must be positive")
        precondition(features.cols == sequenceLength * stepFeatures, "each row must hold T·d = \(sequenceLength * stepFeatures) numbers")
        precondition(labels.count == features.rows * (labelsPerStep ? sequenceLength : 1), "label count does not match")
        self.features = features
        self.sequenceLength = sequenceLength
        self.stepFeatures = stepFeatures
        self.labels = labels
        self.labelsPerStep = labelsPerStep
        self.classes = classes ?? ((labels.max() ?? -1) + 1)
    }

    /// A sequence view of a flat data set (e.g. 8×8 digits read row by row: T = 8, d = 8); its labels
    /// are per sequence, or per step when it has T per example.
    public init(_ flat: LabeledDataset, sequenceLength: Int) {
        precondition(flat.featureCount % sequenceLength == 0, "feature count is not a multiple of T")
        precondition(flat.labelsPerExample == 1 || flat.labelsPerExample == sequenceLength, "per-step labels must number T per example")
        self.init(features: flat.features, sequenceLength: sequenceLength, stepFeatures: flat.featureCount / sequenceLength,
                  labels: flat.labels, labelsPerStep: flat.labelsPerExample > 1, classes: flat.classes)
    }

    /// Number of sequences.
    public var count: Int { features.rows }

    /// The sequences at `indices` as a batch.
    public func batch<C: Collection>(_ indices: C) -> SequenceBatch where C.Element == Int {
        let t = sequenceLength, d = stepFeatures, b = indices.count
        var steps = [Matrix](repeating: Matrix(rows: d, cols: b), count: t)
        var targets = [[Int]](repeating: [Int](repeating: Self.noTarget, count: b), count: t)
        for (j, idx) in indices.enumerated() {
            for s in 0..<t {
                for i in 0..<d { steps[s].storage[i * b + j] = features.storage[idx * t * d + s * d + i] }
                if labelsPerStep { targets[s][j] = labels[idx * t + s] }
            }
            if !labelsPerStep { targets[t - 1][j] = labels[idx] }
        }
        return SequenceBatch(steps: steps, targets: targets, classes: classes)
    }

    /// The data set of the sequences at `indices`, in that order.
    public func subset<C: Collection>(_ indices: C) -> SequenceDataset where C.Element == Int {
        let w = features.cols, per = labelsPerStep ? sequenceLength : 1
        var f = [Float](), l = [Int]()
        f.reserveCapacity(indices.count * w)
        for i in indices {
            f.append(contentsOf: features.storage[(i * w)..<((i + 1) * w)])
            l.append(contentsOf: labels[(i * per)..<((i + 1) * per)])
        }
        return SequenceDataset(features: Matrix(rows: indices.count, cols: w, storage: f), sequenceLength: sequenceLength,
                               stepFeatures: stepFeatures, labels: l, labelsPerStep: labelsPerStep, classes: classes)
    }

    /// A seeded random split: the last `fraction` of a permutation becomes the second set.
    public func split(fraction: Double, seed: UInt64) -> (SequenceDataset, SequenceDataset) {
        var rng = SeededRandom(seed: seed)
        let perm = rng.permutation(count)
        let held = Int((Double(count) * fraction).rounded())
        return (subset(perm[..<(count - held)]), subset(perm[(count - held)...]))
    }
}

/// A mini-batch of sequences: `steps[t]` is x_t (d×B); `targets[t][b]` is the class of example b at
/// step t, or `SequenceDataset.noTarget`.
public struct SequenceBatch: Sendable {
    /// Inputs per step, each d×B.
    public var steps: [Matrix]
    /// Labels per step and example (−1: no target at that step).
    public var targets: [[Int]]
    /// Number of classes C.
    public var classes: Int

    /// A batch.
    public init(steps: [Matrix], targets: [[Int]], classes: Int) {
        precondition(steps.count == targets.count, "one target row per step")
        self.steps = steps
        self.targets = targets
        self.classes = classes
    }

    /// Number of sequences B.
    public var size: Int { steps.first?.cols ?? 0 }
    /// Steps T.
    public var length: Int { steps.count }
    /// Steps that have at least one target.
    public var targetSteps: [Int] { targets.indices.filter { targets[$0].contains { $0 >= 0 } } }
}

/// Output losses shared by the sequence models.
enum SequenceLosses {
    /// The label term: at every step with targets, `Σ (y − onehot)² / (C · n_t)` over the n_t examples
    /// that have a target there, averaged over those steps. With one target per sequence at the
    /// last step this is `MSE_sum(y_T, onehot)/numel` of research/pfc.md §2.2. Returns the loss and
    /// ∂L/∂y_t for every step (nil where a step has no target).
    static func labelMSE(outputs: [Matrix], targets: [[Int]]) -> (loss: Float, grads: [Matrix?]) {
        let active = targets.indices.filter { targets[$0].contains { $0 >= 0 } }
        var grads = [Matrix?](repeating: nil, count: outputs.count)
        var total: Double = 0
        let stepWeight = 1 / Float(max(1, active.count))
        for t in active {
            let y = outputs[t], c = y.rows, b = y.cols
            let n = targets[t].filter { $0 >= 0 }.count
            let scale = stepWeight / Float(c * n)
            var g = Matrix(rows: c, cols: b)
            var acc: Double = 0
            for j in 0..<b where targets[t][j] >= 0 {
                for i in 0..<c {
                    let e = y[i, j] - (targets[t][j] == i ? 1 : 0)
                    acc += Double(e * e)
                    g[i, j] = 2 * e * scale
                }
            }
            total += acc * Double(scale)
            grads[t] = g
        }
        return (Float(total), grads)
    }

    /// (correct, total) of argmax predictions over all targets.
    static func correct(outputs: [Matrix], targets: [[Int]]) -> (Int, Int) {
        var right = 0, total = 0
        for t in targets.indices where targets[t].contains(where: { $0 >= 0 }) {
            let pred = outputs[t].columnArgmax()
            for (j, l) in targets[t].enumerated() where l >= 0 {
                total += 1
                if pred[j] == l { right += 1 }
            }
        }
        return (right, total)
    }
}
