// CopyTask: the copy-task data of research/pfc.md §5.5 (official `create_copy_task_dataset`), used by
// the sequence benchmark and the no-backprop factorized RNN's tests.
import Linalg

/// Copy task: `length` random symbols of `vocab` (one-hot), `padding` pad tokens, then `length`
/// remember tokens; the targets are the symbols, at the last `length` steps (no target before).
/// Inputs have `vocab + 2` features (the pad and remember tokens last).
public struct CopyTask: Sendable, Equatable {
    /// Symbols to copy.
    public var length: Int
    /// Pad steps between the symbols and the recall.
    public var padding: Int
    /// Distinct symbols.
    public var vocab: Int

    /// A copy task.
    public init(length: Int = 10, padding: Int, vocab: Int = 10) {
        precondition(length >= 1 && padding >= 0 && vocab >= 1, "length ≥ 1, padding ≥ 0, vocab ≥ 1")
        self.length = length
        self.padding = padding
        self.vocab = vocab
    }

    /// Steps per sequence: 2·length + padding.
    public var steps: Int { 2 * length + padding }
    /// Input features per step: vocab + 2.
    public var inputDim: Int { vocab + 2 }

    /// `size` fresh sequences.
    public func batch(size: Int, rng: inout SeededRandom) -> SequenceBatch {
        let t = steps, d = inputDim
        var x = [Matrix](repeating: Matrix(rows: d, cols: size), count: t)
        var targets = [[Int]](repeating: [Int](repeating: SequenceDataset.noTarget, count: size), count: t)
        for j in 0..<size {
            for s in 0..<length {
                let symbol = Int(rng.next() % UInt64(vocab))
                x[s][symbol, j] = 1
                targets[length + padding + s][j] = symbol
            }
            for s in length..<(length + padding) { x[s][vocab, j] = 1 }
            for s in (length + padding)..<t { x[s][vocab + 1, j] = 1 }
        }
        return SequenceBatch(steps: x, targets: targets, classes: vocab)
    }

    /// Per-symbol accuracy of `model` on `batches` × `size` fresh sequences.
    public func accuracy<M: SequenceModel>(of model: M, batches: Int = 4, size: Int = 250, rng: inout SeededRandom) -> Float {
        var right = 0, total = 0
        for _ in 0..<batches {
            let b = batch(size: size, rng: &rng)
            let (r, n) = SequenceLosses.correct(outputs: model.predict(b.steps), targets: b.targets)
            right += r; total += n
        }
        return Float(right) / Float(max(1, total))
    }
}
