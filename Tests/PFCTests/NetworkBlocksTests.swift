// NetworkBlocksTests: what every Network says about its PFC blocks (the service's components,
// predictions and explanations use only this, never the concrete type).
import Testing
@testable import Linalg
@testable import PFC

@Suite struct NetworkBlocksTests {
    func batch(_ d: Int, _ b: Int) -> Matrix {
        var rng = SeededRandom(seed: 3)
        return rng.uniformMatrix(rows: d, cols: b)
    }

    @Test(arguments: [(ModelKind.pfc, 1), (.pfc2, 2), (.mlp, 0)])
    func blocksAndTheirActivations(kind: ModelKind, blocks: Int) {
        let net = NetworkFactory.make(Architecture(kind: kind, inputDim: 6, outputDim: 3, basis: 5, iterations: 4), seed: 1)
        #expect(net.pfcBlocks.count == blocks)
        let x = batch(6, 4)
        let acts = net.blockActivations(x)
        #expect(acts.count == blocks)
        // The last block produces the output, and its factors are the parameters of that block.
        if let last = acts.last, let block = net.pfcBlocks.last {
            #expect(last.y.storage == net.predict(x).storage)
            #expect(block.wy.rows == 3 && block.wy.cols == 5 && last.hT.cols == 5)
            let named = net.parameters.map(\.value.storage)
            #expect(net.pfcBlocks.allSatisfy { named.contains($0.wx.storage) && named.contains($0.wy.storage) })
        }
    }

    @Test func inferenceWorkCountsEveryBlock() throws {
        let one = Architecture(kind: .pfc, inputDim: 64, outputDim: 10, basis: 300, iterations: 100)
        var two = one
        two.kind = .pfc2
        // d·K + N·K² + C·K per row for one block, twice the FISTA part for two, plus (d + K)·K² once.
        let fista = 64 * 300 + 100 * 300 * 300, gram = (64 + 300) * 300 * 300
        #expect(one.inferenceWork(rows: 10) == 10 * (fista + 10 * 300) + gram)
        #expect(two.inferenceWork(rows: 10) == 10 * (2 * fista + 10 * 300) + gram)
        var huge = one
        huge.basis = Int.max / 2
        #expect(huge.inferenceWork(rows: 2) == nil)
    }
}

extension NetworkBlocksTests {
    /// Validation scores the objective trained (research/pfc.md §1.3, the official `evaluate_model`):
    /// with `images_labels_mse`, λ·MSE(ŷ, y) + (1−λ)·MSE(W_x h, x) (both reconstructions for pfc2),
    /// the loss `lossAndGradients` reports; with `labels_mse`, MSE(ŷ, y) alone. Checked against the
    /// training pass and against the closed form from the block's own outputs.
    @Test(arguments: [(ModelKind.pfc, LossKind.imagesLabelsMSE), (.pfc2, .imagesLabelsMSE), (.pfc, .labelsMSE), (.pfc2, .labelsMSE)])
    func validationLossIsTheTrainingObjective(kind: ModelKind, loss: LossKind) {
        let arch = Architecture(kind: kind, inputDim: 6, outputDim: 3, basis: 5, iterations: 4, loss: loss, labelLossWeight: 0.3)
        let net = NetworkFactory.make(arch, seed: 2)
        let x = batch(6, 7), labels = [0, 1, 2, 0, 1, 2, 1]
        let trained = net.lossAndGradients(x: x, labels: labels).loss
        let scored = net.evaluate(x: x, labels: labels)
        #expect(abs(scored.loss - trained) <= 1e-6 * max(1, abs(trained)), "\(kind) \(loss): \(scored.loss) vs \(trained)")
        let labelOnly = Losses.mse(net.predict(x), Losses.oneHot(labels, classes: 3)).loss
        if loss == .labelsMSE {
            #expect(abs(scored.loss - labelOnly) <= 1e-6, "\(scored.loss) vs \(labelOnly)")
        } else if kind == .pfc, let block = net.pfcBlocks.first {
            let act = block.forward(x, keepTape: false, reconstruct: true)
            let closed = 0.3 * labelOnly + 0.7 * Losses.mse(act.reconstruction!, x).loss
            #expect(abs(scored.loss - closed) <= 1e-6, "\(scored.loss) vs \(closed)")
            #expect(scored.loss > 0.3 * labelOnly + 1e-4, "the reconstruction term counts")
        }
        let predicted = net.predict(x).columnArgmax()
        #expect(scored.accuracy == Float(zip(predicted, labels).filter { $0 == $1 }.count) / 7)
    }
}
