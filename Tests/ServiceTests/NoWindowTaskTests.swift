import Foundation
import Testing
@testable import PFC
@testable import Service
import TestSupport

/// `"window": null`: a task without the sliding window, every column learnable (research/pfc.md
/// §3.1's "PFC with standard RMSprop" baseline), so a baseline runs through the same task API, with
/// the same validation on earlier tasks and the same R matrix. Real sockets, both stores.
@Suite(.serialized) struct NoWindowTaskTests {
    let continual = ContinualTests()

    @Test(arguments: Backend.all)
    func taskWithoutWindowTrainsLikeTrainAndRecordsEveryColumn(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            let c = h.client
            let tenant = try h.tenantID()
            let (r1, l1) = try continual.digits([0, 1, 2])
            let (r2, l2) = try continual.digits([3, 4])
            let d1 = try c.json("POST", "/v1/datasets", ["name": "t1", "features": r1, "labels": l1]).object["id"] as! String
            let d2 = try c.json("POST", "/v1/datasets", ["name": "t2", "features": r2, "labels": l2]).object["id"] as! String
            let spec: [String: Any] = ["kind": "pfc", "input_dim": 64, "output_dim": 10, "basis": 30, "iterations": 12, "seed": 5]
            let viaTrain = try c.json("POST", "/v1/models", spec.merging(["name": "a"]) { a, _ in a }).object["id"] as! String
            let viaTask = try c.json("POST", "/v1/models", spec.merging(["name": "b"]) { a, _ in a }).object["id"] as! String
            let common: [String: Any] = ["dataset_id": d1, "epochs": 2, "batch_size": 40, "learning_rate": 0.003, "weight_decay": 1e-4,
                                         "validation_fraction": 0.15, "early_stopping": 5, "seed": 9]

            let train = try c.json("POST", "/v1/models/\(viaTrain)/train", common)
            #expect(train.status == 202, "\(train.text)")
            #expect(try h.waitForJob(train.object["id"] as! String)["state"] as? String == "succeeded")
            let task = checked(try c.json("POST", "/v1/models/\(viaTask)/tasks", common.merging(["name": "baseline", "window": NSNull()]) { a, _ in a }),
                               "POST", "/v1/models/{id}/tasks")
            #expect(task.status == 202, "\(task.text)")
            #expect(try h.waitForJob(task.object["id"] as! String)["state"] as? String == "succeeded")

            // The same optimizer on the same batches as /train: the same weights, bit for bit.
            let a = try continual.weights(h, viaTrain, 1, tenant: tenant), b = try continual.weights(h, viaTask, 1, tenant: tenant)
            let start = try continual.weights(h, viaTask, 0, tenant: tenant)
            #expect(a == b, "a task without a window trains as /train does")
            // Every column of W_x moved (a window would have left most at their initial values).
            let wx = b[0].value, wx0 = start[0].value
            for j in 0..<30 { #expect((0..<wx.rows).contains { wx[$0, j] != wx0[$0, j] }, "column \(j) unchanged") }

            // The task's columns and every ledger batch: all 30; the window position stays where it was.
            let tasks = checked(try c.request("GET", "/v1/models/\(viaTask)/tasks"), "GET", "/v1/models/{id}/tasks").object["items"] as! [[String: Any]]
            #expect(tasks.first?["columns"] as? [Int] == [0, 30], "\(tasks)")
            let ledger = try c.request("GET", "/v1/models/\(viaTask)/ledger").object["items"] as! [[String: Any]]
            let batches = (r1.count - Int((Double(r1.count) * 0.15).rounded()) + 39) / 40
            #expect(ledger.count == 2 * batches)
            #expect(ledger.allSatisfy { ($0["windows"] as? [[Int]]) == [[0, 30]] })

            // A windowed task after it starts at column 0: the baseline did not move the window.
            let t2 = try c.json("POST", "/v1/models/\(viaTask)/tasks", ["name": "windowed", "dataset_id": d2, "epochs": 1, "batch_size": 50,
                                                                      "window": 4, "slide": 0.5, "validation_fraction": 0])
            #expect(t2.status == 202, "\(t2.text)")
            #expect(try h.waitForJob(t2.object["id"] as! String)["state"] as? String == "succeeded")
            let after = try c.request("GET", "/v1/models/\(viaTask)/tasks").object["items"] as! [[String: Any]]
            #expect((after.last?["columns"] as? [Int])?.first == 0, "\(after)")

            // Forgetting any batch of the baseline resets every column: it learnt from all of them.
            let one = ledger[0]["id"]!
            let dry = try c.json("POST", "/v1/models/\(viaTask)/forget", ["batches": [one], "dry_run": true])
            #expect(dry.status == 200, "\(dry.text)")
            #expect(dry.object["columns_reset"] as? [Int] == Array(0..<30), "\(dry.text.prefix(300))")

            // window 0 is refused, naming null; nothing queued.
            let jobs = (try c.request("GET", "/v1/jobs?model_id=\(viaTask)").object["items"] as? [Any])?.count
            let bad = try c.json("POST", "/v1/models/\(viaTask)/tasks", ["name": "x", "dataset_id": d2, "window": 0])
            #expect(bad.status == 422 && bad.errorMessage.contains("null"), "\(bad.text)")
            #expect((try c.request("GET", "/v1/jobs?model_id=\(viaTask)").object["items"] as? [Any])?.count == jobs)
        }
    }
}

extension NoWindowTaskTests {
    /// The MLP baseline of research/pfc.md §3.1 through the task API: `"window": null` trains as
    /// /train does (the same weights), validates on earlier tasks and fills R like a PFC model's
    /// tasks; a window is refused (an MLP has no basis columns), and so is a forget.
    @Test(arguments: Backend.all)
    func mlpTasksWithoutWindowAreTheSequentialBaseline(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            let c = h.client
            let tenant = try h.tenantID()
            let (r1, l1) = try continual.digits([0, 1])
            let (r2, l2) = try continual.digits([2, 3])
            let d1 = try c.json("POST", "/v1/datasets", ["name": "t1", "features": r1, "labels": l1]).object["id"] as? String ?? ""
            let d2 = try c.json("POST", "/v1/datasets", ["name": "t2", "features": r2, "labels": l2]).object["id"] as? String ?? ""
            let spec: [String: Any] = ["kind": "mlp", "input_dim": 64, "output_dim": 10, "hidden": 16, "seed": 3]
            let viaTrain = try c.json("POST", "/v1/models", spec.merging(["name": "a"]) { a, _ in a }).object["id"] as? String ?? ""
            let viaTask = try c.json("POST", "/v1/models", spec.merging(["name": "b"]) { a, _ in a }).object["id"] as? String ?? ""
            let common: [String: Any] = ["dataset_id": d1, "epochs": 2, "batch_size": 40, "learning_rate": 0.003, "weight_decay": 1e-4,
                                         "validation_fraction": 0.15, "early_stopping": 5, "seed": 9]

            let windowed = checked(try c.json("POST", "/v1/models/\(viaTask)/tasks", common.merging(["name": "w"]) { a, _ in a }),
                                   "POST", "/v1/models/{id}/tasks")
            #expect(windowed.status == 422 && windowed.errorMessage.contains("\"window\": null"), "\(windowed.text)")

            let train = try c.json("POST", "/v1/models/\(viaTrain)/train", common)
            #expect(try h.waitForJob(train.object["id"] as? String ?? "")["state"] as? String == "succeeded")
            let task = checked(try c.json("POST", "/v1/models/\(viaTask)/tasks", common.merging(["name": "one", "window": NSNull(),
                                                                                                   "evaluation_dataset_id": d1]) { a, _ in a }),
                               "POST", "/v1/models/{id}/tasks")
            #expect(task.status == 202, "\(task.text)")
            #expect(try h.waitForJob(task.object["id"] as? String ?? "")["state"] as? String == "succeeded")
            #expect(try continual.weights(h, viaTrain, 1, tenant: tenant) == continual.weights(h, viaTask, 1, tenant: tenant),
                    "an MLP task without a window trains as /train does")

            let t2 = try c.json("POST", "/v1/models/\(viaTask)/tasks", common.merging(["name": "two", "window": NSNull(), "dataset_id": d2,
                                                                                       "evaluation_dataset_id": d2]) { _, b in b })
            #expect(t2.status == 202, "\(t2.text)")
            #expect(try h.waitForJob(t2.object["id"] as? String ?? "")["state"] as? String == "succeeded")
            let m = checked(try c.request("GET", "/v1/models/\(viaTask)/tasks/metrics"), "GET", "/v1/models/{id}/tasks/metrics")
            let R = m.object["accuracy_matrix"] as? [[Any]] ?? []
            #expect(R.count == 2 && R[1].count == 2 && R[1].allSatisfy { $0 is Double }, "\(m.text)")
            let version2 = try h.store.modelVersion(modelID: viaTask, version: 2, tenantID: tenant)
            #expect(VersionMetrics(column: version2.metrics).validatedOnTasks == [1], "task 2 validated on task 1's split too")

            let forget = checked(try c.json("POST", "/v1/models/\(viaTask)/forget", ["task": 1]), "POST", "/v1/models/{id}/forget")
            #expect(forget.status == 409 && forget.errorMessage.contains("no basis columns"), "\(forget.text)")
        }
    }
}
