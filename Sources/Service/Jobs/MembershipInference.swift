// MembershipInference: the verification of a forget (issue 17). A loss-threshold membership-inference
// attack guesses "trained on it" for examples whose loss is low; its ROC AUC over the forgotten training
// examples (members) against held-out examples of the same distribution (non-members) is the probability
// that a random forgotten example has a lower loss than a random held-out one (ties count ½), the
// Mann–Whitney U statistic divided by m·n. 1: the model still tells them apart perfectly; 0.5: the
// forgotten examples look as unseen as the held-out ones.
import Foundation
import Linalg
import PFC

/// One side (before or after the reset) of a forget's verification.
struct ForgetCheckDTO: Codable, Sendable, Equatable {
    /// ROC AUC of the loss-threshold attack, forgotten (members) vs reference (non-members).
    var miaAUC: Double?
    var forgottenAccuracy: Double?
    var restAccuracy: Double?
    var referenceAccuracy: Double?
    enum CodingKeys: String, CodingKey {
        case miaAUC = "mia_auc", forgottenAccuracy = "forgotten_accuracy", restAccuracy = "rest_accuracy", referenceAccuracy = "reference_accuracy"
    }
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(miaAUC, forKey: .miaAUC)
        try c.encode(forgottenAccuracy, forKey: .forgottenAccuracy)
        try c.encode(restAccuracy, forKey: .restAccuracy)
        try c.encode(referenceAccuracy, forKey: .referenceAccuracy)
    }
}

/// What a forget with `reference_dataset_id` measured (in its answer and its audit record).
struct ForgetVerificationDTO: Codable, Sendable, Equatable {
    var referenceDatasetID: String
    /// Distinct training examples of the selected batches.
    var forgottenExamples: Int
    /// Distinct training examples of the other ledger batches, the forgotten ones excluded.
    var restExamples: Int
    var referenceExamples: Int
    var before: ForgetCheckDTO
    var after: ForgetCheckDTO
    enum CodingKeys: String, CodingKey {
        case before, after
        case referenceDatasetID = "reference_dataset_id", forgottenExamples = "forgotten_examples", restExamples = "rest_examples"
        case referenceExamples = "reference_examples"
    }
}

enum MembershipInference {
    /// Per-example loss of `network` on `data` (labels MSE per example, or cross-entropy for
    /// `loss: cross_entropy` models) and the correct count, in chunks of 500; `tick(rows)` after
    /// every chunk may throw to stop.
    static func losses(_ network: any Network, _ data: LabeledDataset, tick: (Int) throws -> Void = { _ in }) rethrows
        -> (losses: [Double], correct: Int) {
        var out: [Double] = []
        out.reserveCapacity(data.count)
        var correct = 0
        var start = 0
        let crossEntropy = network.architecture.loss == .crossEntropy
        while start < data.count {
            let end = min(data.count, start + 500)
            let (x, labels) = data.batch(start..<end)
            let y = network.predict(x)
            let predicted = y.columnArgmax()
            for j in 0..<y.cols {
                let l = labels[j]
                if predicted[j] == l { correct += 1 }
                if crossEntropy {
                    var mx = -Double.infinity
                    for i in 0..<y.rows { mx = max(mx, Double(y[i, j])) }
                    var sum = 0.0
                    for i in 0..<y.rows { sum += exp(Double(y[i, j]) - mx) }
                    out.append(-(Double(y[l, j]) - mx - log(sum)))
                } else {
                    var acc = 0.0
                    for i in 0..<y.rows { let e = Double(y[i, j]) - (i == l ? 1 : 0); acc += e * e }
                    out.append(acc / Double(y.rows))
                }
            }
            try tick(end - start)
            start = end
        }
        return (out.map { $0.isFinite ? $0 : .greatestFiniteMagnitude }, correct)
    }

    /// P(member loss < non-member loss) + ½ P(equal): the ROC AUC of the attack "member when the
    /// loss is below a threshold"; nil when either side is empty.
    static func auc(members: [Double], nonMembers: [Double]) -> Double? {
        let m = members.count, n = nonMembers.count
        guard m > 0, n > 0 else { return nil }
        let all = (members.map { ($0, false) } + nonMembers.map { ($0, true) }).sorted { $0.0 < $1.0 }
        // Average ranks (1-based) over ties; U = Σ ranks of non-members − n(n+1)/2.
        var rankSum = 0.0
        var i = 0
        while i < all.count {
            var j = i
            while j + 1 < all.count && all[j + 1].0 == all[i].0 { j += 1 }
            let rank = Double(i + j + 2) / 2
            for k in i...j where all[k].1 { rankSum += rank }
            i = j + 1
        }
        let u = rankSum - Double(n) * Double(n + 1) / 2
        return u / (Double(m) * Double(n))
    }

    /// One side of the check.
    static func check(_ network: any Network, forgotten: LabeledDataset, rest: LabeledDataset, reference: LabeledDataset,
                      tick: (Int) throws -> Void = { _ in }) rethrows -> ForgetCheckDTO {
        let f = try losses(network, forgotten, tick: tick), r = try losses(network, reference, tick: tick)
        let restCorrect = rest.count > 0 ? try losses(network, rest, tick: tick).correct : 0
        func share(_ c: Int, _ n: Int) -> Double? { n > 0 ? Double(c) / Double(n) : nil }
        return ForgetCheckDTO(miaAUC: auc(members: f.losses, nonMembers: r.losses), forgottenAccuracy: share(f.correct, forgotten.count),
                              restAccuracy: share(restCorrect, rest.count), referenceAccuracy: share(r.correct, reference.count))
    }
}
