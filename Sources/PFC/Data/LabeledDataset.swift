// LabeledDataset: examples with integer labels, batched into d×B matrices for training.
import Linalg

/// A classification data set: `features` holds one example per **row** (n×d); batches handed to
/// networks are transposed to one example per column (d×B).
public struct LabeledDataset: Sendable, Equatable {
    /// n × d features, one row per example.
    public var features: Matrix
    /// n·L labels in `0..<classes`, example after example: L = `labelsPerExample` is 1, or T for a
    /// sequence data set labelled at every step (−1, `SequenceDataset.noTarget`, marks a step
    /// without a target).
    public var labels: [Int]
    /// Number of classes (at least max(label) + 1).
    public var classes: Int
    /// Labels per example: 1, or the T steps of sequences labelled per step.
    public let labelsPerExample: Int

    /// A data set; `classes` defaults to max(label) + 1.
    public init(features: Matrix, labels: [Int], classes: Int? = nil, labelsPerExample: Int = 1) {
        precondition(labelsPerExample >= 1 && features.rows * labelsPerExample == labels.count, "labelsPerExample labels per example")
        self.features = features
        self.labels = labels
        self.classes = classes ?? ((labels.max() ?? -1) + 1)
        self.labelsPerExample = labelsPerExample
    }

    /// Labels are below this in every reader (CSV, JSON, NDJSON): 10⁹, far past any class count
    /// a model may have, and small enough that `classes` = max + 1 never overflows.
    public static let labelLimit = 1_000_000_000

    /// Number of examples.
    public var count: Int { features.rows }
    /// Features per example.
    public var featureCount: Int { features.cols }

    /// The examples at `indices` as a d×B batch with their B·L labels (example after example).
    public func batch<C: Collection>(_ indices: C) -> (x: Matrix, labels: [Int]) where C.Element == Int {
        let d = features.cols, b = indices.count
        var x = Matrix(rows: d, cols: b)
        let per = labelsPerExample
        var labs = [Int]()
        labs.reserveCapacity(b * per)
        features.storage.withUnsafeBufferPointer { src in
            x.storage.withUnsafeMutableBufferPointer { dst in
                for (j, idx) in indices.enumerated() {
                    for i in 0..<d { dst[i * b + j] = src[idx * d + i] }
                    labs.append(contentsOf: labels[(idx * per)..<((idx + 1) * per)])
                }
            }
        }
        return (x, labs)
    }

    /// The whole data set as one d×n batch.
    public func allAsBatch() -> (x: Matrix, labels: [Int]) { batch(0..<count) }

    /// A data set of the examples at `indices`, in that order.
    public func subset<C: Collection>(_ indices: C) -> LabeledDataset where C.Element == Int {
        let d = features.cols
        var f = [Float]()
        f.reserveCapacity(indices.count * d)
        for i in indices { f.append(contentsOf: features.storage[(i * d)..<((i + 1) * d)]) }
        let per = labelsPerExample
        return LabeledDataset(features: Matrix(rows: indices.count, cols: d, storage: f),
                              labels: indices.flatMap { labels[($0 * per)..<(($0 + 1) * per)] }, classes: classes, labelsPerExample: per)
    }

    /// `parts` one after another (same features and labels per example; `classes` the largest).
    /// Nil when `parts` is empty or they do not fit together.
    public static func concatenating(_ parts: [LabeledDataset]) -> LabeledDataset? {
        guard let first = parts.first,
              parts.allSatisfy({ $0.featureCount == first.featureCount && $0.labelsPerExample == first.labelsPerExample }) else { return nil }
        if parts.count == 1 { return first }
        var f = [Float](), labels = [Int]()
        f.reserveCapacity(parts.reduce(0) { $0 + $1.features.storage.count })
        labels.reserveCapacity(parts.reduce(0) { $0 + $1.labels.count })
        for p in parts { f.append(contentsOf: p.features.storage); labels.append(contentsOf: p.labels) }
        return LabeledDataset(features: Matrix(rows: parts.reduce(0) { $0 + $1.count }, cols: first.featureCount, storage: f),
                              labels: labels, classes: parts.map(\.classes).max(), labelsPerExample: first.labelsPerExample)
    }

    /// A seeded random split: the last `fraction` of a permutation becomes the second set.
    public func split(fraction: Double, seed: UInt64) -> (LabeledDataset, LabeledDataset) {
        let (a, b) = splitIndices(fraction: fraction, seed: seed)
        return (subset(a), subset(b))
    }

    /// The row indices `split(fraction:seed:)` puts in each part, in order: row i of the first part
    /// is row `first[i]` of this data set.
    public func splitIndices(fraction: Double, seed: UInt64) -> (first: [Int], second: [Int]) {
        var rng = SeededRandom(seed: seed)
        let perm = rng.permutation(count)
        let held = Int((Double(count) * fraction).rounded())
        return (Array(perm[..<(count - held)]), Array(perm[(count - held)...]))
    }
}
