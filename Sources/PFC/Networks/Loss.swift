// Loss: the training objectives of research/pfc.md §1.2 (MSE to one-hot, images+labels MSE) and
// softmax cross-entropy.
import Foundation
import Linalg

/// Which objective a network trains on.
public enum LossKind: String, Sendable, Codable, CaseIterable {
    /// `MSE(ŷ, onehot)`, the paper's default for classifiers.
    case labelsMSE = "labels_mse"
    /// `λ·MSE(W_y h, y) + (1−λ)·MSE(W_x h, x)` (λ = `class_label_loss_strength`, default 0.5).
    case imagesLabelsMSE = "images_labels_mse"
    /// Mean softmax cross-entropy of the outputs.
    case crossEntropy = "cross_entropy"
}

/// Loss values with their gradients.
public enum Losses {
    /// `mean((p − t)²)` over all elements (PyTorch `mse_loss`, reduction mean) and its gradient
    /// `2(p − t)/n`, scaled by `weight`.
    public static func mse(_ p: Matrix, _ t: Matrix, weight: Float = 1) -> (loss: Float, grad: Matrix) {
        precondition(p.rows == t.rows && p.cols == t.cols, "shape mismatch in MSE")
        var g = Matrix(rows: p.rows, cols: p.cols)
        let n = Float(max(1, p.count))
        var acc: Double = 0
        for i in 0..<p.count {
            let e = p.storage[i] - t.storage[i]
            acc += Double(e * e)
            g.storage[i] = weight * 2 * e / n
        }
        return (weight * Float(acc / Double(n)), g)
    }

    /// Mean softmax cross-entropy of `outputs` (C×B, one column per example) against `labels`.
    public static func softmaxCrossEntropy(_ outputs: Matrix, labels: [Int]) -> (loss: Float, grad: Matrix) {
        let c = outputs.rows, b = outputs.cols
        var g = Matrix(rows: c, cols: b)
        var acc: Double = 0
        for j in 0..<b {
            var mx = -Float.infinity
            for i in 0..<c { mx = max(mx, outputs[i, j]) }
            var sum: Float = 0
            for i in 0..<c { let e = expf(outputs[i, j] - mx); g[i, j] = e; sum += e }
            for i in 0..<c { g[i, j] /= sum }
            acc -= Double(logf(max(g[labels[j], j], .leastNormalMagnitude)))
            g[labels[j], j] -= 1
        }
        g.scale(by: 1 / Float(max(1, b)))
        return (Float(acc / Double(max(1, b))), g)
    }

    /// One-hot targets (C×B) for `labels`.
    public static func oneHot(_ labels: [Int], classes: Int) -> Matrix {
        var m = Matrix(rows: classes, cols: labels.count)
        for (j, l) in labels.enumerated() { m[l, j] = 1 }
        return m
    }

    /// The output loss (label part) and its gradient for any `LossKind`; the images term of
    /// `imagesLabelsMSE` is added by the network, which owns the reconstruction.
    /// The share of columns of `outputs` (C×B) whose largest entry is at the label.
    public static func accuracy(_ outputs: Matrix, labels: [Int]) -> Float {
        let correct = zip(outputs.columnArgmax(), labels).filter { $0 == $1 }.count
        return labels.isEmpty ? 0 : Float(correct) / Float(labels.count)
    }

    static func outputLoss(_ kind: LossKind, outputs: Matrix, labels: [Int], labelWeight: Float) -> (loss: Float, grad: Matrix) {
        switch kind {
        case .crossEntropy: return softmaxCrossEntropy(outputs, labels: labels)
        case .labelsMSE: return mse(outputs, oneHot(labels, classes: outputs.rows))
        case .imagesLabelsMSE: return mse(outputs, oneHot(labels, classes: outputs.rows), weight: labelWeight)
        }
    }
}
