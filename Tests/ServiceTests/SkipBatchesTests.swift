import Foundation
import Testing
@testable import PFC
@testable import Service
@testable import Storage
import TestSupport

/// `skip_batches` (research/pfc.md §4, `step_without_update`): the listed batches of every epoch
/// advance the window without training, so the unlearning experiment's upper bound (retrained,
/// skipping the corrupt batches, the batch → column map unchanged) runs through the task API.
@Suite(.serialized) struct SkipBatchesTests {
    @Test(arguments: Backend.all)
    func skippedBatchesTrainNothingAndKeepTheColumnMap(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            let c = h.client
            let tenant = try h.tenantID()
            let text = try String(contentsOf: ServiceHarness.fixture("digits_train.csv"), encoding: .utf8)
            let rows = text.split(separator: "\n").map { $0.split(separator: ",").compactMap { Double($0) } }.filter { $0.count == 65 }.prefix(150)
            let d = try c.json("POST", "/v1/datasets", ["name": "three batches", "features": rows.map { Array($0.dropFirst()) },
                                                         "labels": rows.map { Int($0[0]) }]).object["id"] as? String ?? ""
            let model = try c.json("POST", "/v1/models", ["name": "skip", "kind": "pfc", "input_dim": 64, "output_dim": 10, "basis": 12,
                                                          "iterations": 10]).object["id"] as? String ?? ""
            // Batch j of each epoch trains columns [4j, 4j + 4): windows that do not overlap.
            var task: [String: Any] = ["name": "skip one", "dataset_id": d, "epochs": 2, "batch_size": 50, "window": 4, "slide": 4,
                                       "deterministic": true, "validation_fraction": 0, "early_stopping": NSNull(), "learning_rate": 0.01]
            for (bad, why) in [([-1], "skip_batches"), (Array(0...100_000), "skip_batches")] {
                task["skip_batches"] = bad
                let r = checked(try c.json("POST", "/v1/models/\(model)/tasks", task), "POST", "/v1/models/{id}/tasks")
                #expect(r.status == 422 && r.text.contains(why), "\(r.text)")
            }
            var noWindow = task; noWindow["window"] = NSNull(); noWindow["skip_batches"] = [1]
            let nw = checked(try c.json("POST", "/v1/models/\(model)/tasks", noWindow), "POST", "/v1/models/{id}/tasks")
            #expect(nw.status == 422 && nw.text.contains("window"), "\(nw.text)")
            #expect(try h.store.modelVersions(modelID: model, tenantID: tenant).items.count == 1)

            task["skip_batches"] = [1]
            let r = checked(try c.json("POST", "/v1/models/\(model)/tasks", task), "POST", "/v1/models/{id}/tasks")
            #expect(r.status == 202, "\(r.text)")
            #expect(try h.waitForJob(r.object["id"] as? String ?? "")["state"] as? String == "succeeded")

            let ledger = try c.request("GET", "/v1/models/\(model)/ledger").object["items"] as? [[String: Any]] ?? []
            #expect(ledger.compactMap { $0["batch_index"] as? Int }.sorted() == [0, 0, 2, 2], "\(ledger)")
            #expect(ledger.first { $0["batch_index"] as? Int == 2 }?["windows"] as? [[Int]] == [[8, 12]])
            // Columns 4…7 (batch 1's window) are exactly as initialised in every matrix; the others trained.
            let before = try ModelFile.decode(Array(try h.store.modelWeights(modelID: model, version: 0, tenantID: tenant))).parameters
            let after = try ModelFile.decode(Array(try h.store.modelWeights(modelID: model, version: 1, tenantID: tenant))).parameters
            for (p, q) in zip(before, after) where p.value.cols == 12 {
                for k in 0..<12 {
                    let same = (0..<p.value.rows).allSatisfy { p.value[$0, k] == q.value[$0, k] }
                    #expect(same == (4..<8).contains(k), "\(p.name) column \(k): unchanged \(same)")
                }
            }
        }
    }
}
