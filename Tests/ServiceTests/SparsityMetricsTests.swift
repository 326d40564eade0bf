import Foundation
import Testing
import TestSupport
import Linalg
import PFC
@testable import Service

/// Issue 14: the FISTA active fraction per iteration is a `/metrics` statistic for training and for
/// prediction, over a real socket, equal to what the job's progress reports and to the same
/// prediction recomputed in-process.
@Suite(.serialized) struct SparsityMetricsTests {
    /// The value of one sample line `name{labels} value` in Prometheus text, if present.
    static func sample(_ text: String, _ series: String) -> Double? {
        for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
            return Double(line.dropFirst(series.count + 1))
        }
        return nil
    }

    @Test(arguments: Backend.all)
    func activeFractionGaugesFollowTrainingAndPrediction(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            let before = try h.metrics()
            #expect(Self.sample(before, "pfc_fista_passes_total{phase=\"training\"}") == 0, "\(before)")
            #expect(Self.sample(before, "pfc_fista_passes_total{phase=\"prediction\"}") == 0)
            #expect(!before.contains("pfc_fista_active_fraction{"), "no series before the first pass")

            // Training: the gauges are the job's last progress report (the same pass), N = 12.
            let (id, rows) = try RegistryTests.trainedModel(h)
            let jobs = try h.client.request("GET", "/v1/jobs?model_id=\(id)").object["items"] as? [[String: Any]] ?? []
            let progress = jobs.first?["progress"] as? [String: Any] ?? [:]
            let reported = progress["active_fraction"] as? [Double] ?? []
            #expect(reported.count == 12, "\(progress)")
            let trained = try h.metrics()
            for t in [1, 2, 5, 10] where t <= reported.count {
                let g = Self.sample(trained, "pfc_fista_active_fraction{phase=\"training\",iteration=\"\(t)\"}")
                #expect(g != nil && abs(g! - reported[t - 1]) < 1e-6, "t \(t): gauge \(String(describing: g)) vs progress \(reported[t - 1])")
            }
            #expect(Self.sample(trained, "pfc_fista_active_fraction{phase=\"training\",iteration=\"20\"}") == nil, "t > N is not exported")
            let mean = Self.sample(trained, "pfc_fista_active_fraction_mean{phase=\"training\"}")
            #expect(mean != nil && abs(mean! - reported.reduce(0, +) / Double(reported.count)) < 1e-5)
            #expect((Self.sample(trained, "pfc_fista_passes_total{phase=\"training\"}") ?? 0) >= 1)
            #expect(Self.sample(trained, "pfc_fista_passes_total{phase=\"prediction\"}") == 0)

            // Prediction: one batch of 20 rows; the gauges match the same prediction run in-process.
            _ = try RegistryTests.predict(h, id, rows)
            let predicted = try h.metrics()
            #expect(Self.sample(predicted, "pfc_fista_passes_total{phase=\"prediction\"}") == 1, "\(predicted)")
            let (_, network) = try h.service.models.network(modelID: id, tenantID: try h.tenantID(), version: nil)
            let x = Matrix(rows.prefix(20).map { $0.map(Float.init) }).transposed()
            let (_, passes) = FISTAStatistics.recording { PredictController.explain(network, x: x, top: 1) }
            let want = try #require(passes.last)
            #expect(!want.training && want.activeFraction.count == 12)
            for t in [1, 2, 5, 10] {
                let g = Self.sample(predicted, "pfc_fista_active_fraction{phase=\"prediction\",iteration=\"\(t)\"}")
                // Rounding may put an entry on the other side of the floor: one entry of 20 × 16 is 0.003.
                #expect(g != nil && abs(g! - Double(want.activeFraction[t - 1])) < 0.01,
                        "t \(t): gauge \(String(describing: g)) vs in-process \(want.activeFraction[t - 1])")
            }
            let share = Self.sample(predicted, "pfc_fista_sparse_share{phase=\"prediction\"}")
            #expect(share != nil && (0...1).contains(share!))
            // The training series are untouched by predictions.
            let g1 = Self.sample(predicted, "pfc_fista_active_fraction{phase=\"training\",iteration=\"5\"}")
            #expect(g1 != nil && abs(g1! - reported[4]) < 1e-6)
        }
    }
}
