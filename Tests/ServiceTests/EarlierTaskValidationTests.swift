import Foundation
import Testing
import TestSupport
import PFC
import Linalg
@testable import Service

/// research/pfc.md §3.1: a Split MNIST task validates (early stopping, the kept epoch) on its own
/// split plus every earlier task's. A task version keeps its split (dataset, fraction, seed); the
/// next task recomputes those rows and validates on them too. Real sockets, both stores.
@Suite(.serialized) struct EarlierTaskValidationTests {
    let metricsTests = ContinualMetricsTests()

    /// Row indices of the validation split of a dataset of `n` rows (the trainer's own split).
    func held(_ n: Int, fraction: Double, seed: UInt64) -> [Int] {
        LabeledDataset(features: Matrix(rows: n, cols: 1), labels: Array(repeating: 0, count: n)).splitIndices(fraction: fraction, seed: seed).second
    }

    func versionMetrics(_ c: TestClient, _ model: String, _ v: Int) throws -> [String: Any] {
        let r = checked(try c.request("GET", "/v1/models/\(model)/versions/\(v)"), "GET", "/v1/models/{id}/versions/{v}")
        #expect(r.status == 200, "\(r.text)")
        return r.object["metrics"] as? [String: Any] ?? [:]
    }

    @Test(arguments: Backend.all)
    func taskValidatesOnEarlierTasksSplits(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            let c = h.client
            let parts: [Set<Int>] = [[0, 1], [2, 3], [4, 5]]
            let data = try parts.map { try metricsTests.digits("digits_train.csv", $0) }
            let ids = try data.enumerated().map { try metricsTests.upload(c, "train \($0.offset + 1)", $0.element) }
            let model = checked(try c.json("POST", "/v1/models", ["name": "cl", "kind": "pfc", "input_dim": 64, "output_dim": 10, "basis": 40,
                                                                  "iterations": 15, "loss": "images_labels_mse"]), "POST", "/v1/models").object["id"] as! String
            let seeds: [UInt64] = [7, 3, 5], fraction = 0.2
            func task(_ i: Int, _ extra: [String: Any] = [:]) throws -> [String: Any] {
                var body: [String: Any] = ["name": "task \(i + 1)", "dataset_id": ids[i], "epochs": 1, "batch_size": 50, "window": 6, "slide": 0.5,
                                           "validation_fraction": fraction, "early_stopping": NSNull(), "learning_rate": 0.003, "seed": seeds[i]]
                for (k, v) in extra { body[k] = v }
                let r = checked(try c.json("POST", "/v1/models/\(model)/tasks", body), "POST", "/v1/models/{id}/tasks")
                #expect(r.status == 202, "\(r.text)")
                let done = try h.waitForJob(r.object["id"] as! String)
                #expect(done["state"] as? String == "succeeded", "\(done)")
                return try versionMetrics(c, model, i + 1)
            }
            let splits = data.enumerated().map { held($0.element.labels.count, fraction: fraction, seed: seeds[$0.offset]) }

            // Task 1 keeps its split; it has no earlier task.
            let m1 = try task(0)
            #expect(m1["validation_fraction"] as? Double == fraction && m1["validation_seed"] as? Int == 7, "\(m1)")
            #expect(m1["validation_examples"] as? Int == splits[0].count, "\(m1)")
            #expect(m1["validated_on_tasks"] == nil || m1["validated_on_tasks"] is NSNull, "\(m1)")

            // Task 2 (the default) validates on its split and task 1's: the kept epoch's validation
            // accuracy is the version's accuracy on exactly those rows.
            let m2 = try task(1)
            #expect(m2["validated_on_tasks"] as? [Int] == [1], "\(m2)")
            #expect(m2["validation_examples"] as? Int == splits[1].count + splits[0].count, "\(m2)")
            let rows = splits[1].map { data[1].rows[$0] } + splits[0].map { data[0].rows[$0] }
            let labels = splits[1].map { data[1].labels[$0] } + splits[0].map { data[0].labels[$0] }
            let both = try metricsTests.upload(c, "validation 1+2", (rows, labels))
            let own = try metricsTests.upload(c, "validation 2", (splits[1].map { data[1].rows[$0] }, splits[1].map { data[1].labels[$0] }))
            func accuracy(_ ds: String) throws -> Double {
                let e = checked(try c.json("POST", "/v1/models/\(model)/evaluate", ["dataset_id": ds, "version": 2]), "POST", "/v1/models/{id}/evaluate")
                #expect(e.status == 200, "\(e.text)")
                return e.object["accuracy"] as? Double ?? -1
            }
            let v2 = m2["validation_accuracy"] as? Double ?? -9
            let onBoth = try accuracy(both), onOwn = try accuracy(own)
            // Within one example (the evaluation batches differently, which may flip an exact tie).
            #expect(abs(v2 - onBoth) <= 1.0 / Double(rows.count) + 1e-6, "validation accuracy \(v2) vs \(onBoth) on both splits")
            // Task 1's digits are forgotten in part, so the two sets score apart: the check tells them apart.
            #expect(abs(onBoth - onOwn) > 2.0 / Double(rows.count), "both \(onBoth), own \(onOwn)")

            // Task 3 asks for its own split only.
            let m3 = try task(2, ["validate_on_earlier_tasks": false])
            #expect(m3["validation_examples"] as? Int == splits[2].count, "\(m3)")
            #expect(m3["validated_on_tasks"] == nil || m3["validated_on_tasks"] is NSNull, "\(m3)")
            #expect(m3["validation_fraction"] as? Double == fraction, "\(m3)")

            // A bad value is refused, nothing queued.
            let before = try c.request("GET", "/v1/jobs?model_id=\(model)").object["items"] as? [[String: Any]] ?? []
            let bad = checked(try c.json("POST", "/v1/models/\(model)/tasks", ["name": "x", "dataset_id": ids[0], "validate_on_earlier_tasks": "yes"]),
                              "POST", "/v1/models/{id}/tasks")
            #expect(bad.status == 422 && bad.errorMessage.contains("validate_on_earlier_tasks"), "\(bad.text)")
            let after = try c.request("GET", "/v1/jobs?model_id=\(model)").object["items"] as? [[String: Any]] ?? []
            #expect(after.count == before.count)
        }
    }

    /// More earlier rows than `maxEarlierTaskValidationExamples`: each earlier task keeps its share;
    /// a task whose dataset was deleted is left out.
    @Test(arguments: Backend.all)
    func earlierRowsAreCappedAndMissingDatasetsLeftOut(backend: Backend) throws {
        try ServiceHarness.with(backend, configure: { $0.limits.maxEarlierTaskValidationExamples = 30 }) { h in
            let c = h.client
            let parts: [Set<Int>] = [[0, 1], [2, 3], [4, 5], [6, 7]]
            let data = try parts.map { try metricsTests.digits("digits_train.csv", $0) }
            let ids = try data.enumerated().map { try metricsTests.upload(c, "train \($0.offset + 1)", $0.element) }
            let model = checked(try c.json("POST", "/v1/models", ["name": "cl", "kind": "pfc", "input_dim": 64, "output_dim": 10, "basis": 60,
                                                                  "iterations": 10]), "POST", "/v1/models").object["id"] as! String
            func task(_ i: Int) throws -> [String: Any] {
                let r = checked(try c.json("POST", "/v1/models/\(model)/tasks", ["name": "t\(i)", "dataset_id": ids[i], "epochs": 1, "batch_size": 100,
                                                                                 "window": 6, "slide": 0.5, "validation_fraction": 0.15, "seed": i]),
                                "POST", "/v1/models/{id}/tasks")
                #expect(r.status == 202, "\(r.text)")
                #expect(try h.waitForJob(r.object["id"] as! String)["state"] as? String == "succeeded")
                return try versionMetrics(c, model, i + 1)
            }
            let held = data.enumerated().map { self.held($0.element.labels.count, fraction: 0.15, seed: UInt64($0.offset)).count }
            for i in 0..<3 { _ = try task(i) }
            // Task 1's dataset goes; a job that used it is finished, so the delete is allowed.
            #expect(try c.request("DELETE", "/v1/datasets/\(ids[0])").status == 204)
            let m = try task(3)
            #expect(m["validated_on_tasks"] as? [Int] == [2, 3], "\(m)")
            let total = held[1] + held[2]
            #expect(total > 30)
            let expected = held[3] + Int(Double(held[1]) * 30 / Double(total)) + Int(Double(held[2]) * 30 / Double(total))
            #expect(m["validation_examples"] as? Int == expected, "\(m) held \(held)")
        }
    }
}
