// The continual limits: tasks per model (the accuracy matrix is T × T) and example rows in a model's
// ledger (every epoch records each training row; a forget reads them all), held at submit, in the
// worker, as a stream arrives and again in the transaction that writes the task.

import Foundation
import Testing
import TestSupport
import HTTP
@testable import PFC
@testable import Service
@testable import Storage

@Suite(.serialized) struct ContinualLimitTests {
    private func lines(_ n: Int) -> String {
        (0..<n).map { i in
            let features = (0..<16).map { j in String(format: "%.3f", Double((i * 7 + j * 3) % 10) / 10) }.joined(separator: ",")
            return #"{"features":[\#(features)],"label":\#(i % 3)}"#
        }.joined(separator: "\n") + "\n"
    }

    private func stream(_ c: TestClient, _ model: String, rows: Int) throws -> TestResponse {
        checked(try c.request("POST", "/v1/models/\(model)/tasks/stream?name=s&batch_size=20&window=2&slide=0.25",
                              body: Data(lines(rows).utf8), contentType: "application/x-ndjson"), "POST", "/v1/models/{id}/tasks/stream")
    }

    private func usage(_ h: ServiceHarness, _ model: String) throws -> ContinualUsage {
        try h.store.continualUsage(modelID: model, tenantID: try h.tenantID())
    }

    @Test(arguments: Backend.all)
    func tasksAndLedgerRowsStopAtTheirLimitsWithNothingStored(backend: Backend) throws {
        let h = try ServiceHarness(HarnessLocation(backend), startWorkers: false, destroysLocation: true, configure: {
            $0.limits.maxTasksPerModel = 3
            $0.limits.maxLedgerRowsPerModel = 400
        })
        defer { h.stop() }
        let c = h.client
        let model = try c.json("POST", "/v1/models", ["name": "l", "kind": "pfc", "input_dim": 16, "output_dim": 3, "basis": 64,
                                                      "iterations": 10]).object["id"] as? String ?? ""
        // Task 1, streamed: 100 ledger rows.
        let first = try stream(c, model, rows: 100)
        #expect(first.status == 201, "\(first.text)")
        #expect(try usage(h, model) == ContinualUsage(taskVersions: 1, ledgerRows: 100))

        // A stream that would pass 400 rows is refused as it arrives; nothing is recorded or left staged.
        let long = try stream(c, model, rows: 320)
        #expect(long.status == 422 && long.text.contains("max_ledger_rows_per_model"), "\(long.text)")
        #expect(try usage(h, model) == ContinualUsage(taskVersions: 1, ledgerRows: 100))
        #expect(try h.store.stagedTaskBatchCount().batches == 0)

        // A task job counts epochs × training rows at submit: 4 × 80 beside 100 is too many, 3 × 80 fits.
        let rows = (0..<80).map { i in (0..<16).map { j in Double((i * 5 + j) % 7) / 7 } }
        let d = try c.json("POST", "/v1/datasets", ["name": "d", "features": rows, "labels": (0..<80).map { $0 % 3 }]).object["id"] as? String ?? ""
        var task: [String: Any] = ["name": "t", "dataset_id": d, "epochs": 4, "batch_size": 20, "window": 2, "slide": 0.25,
                                   "validation_fraction": 0, "early_stopping": NSNull(), "grow": true]
        let over = checked(try c.json("POST", "/v1/models/\(model)/tasks", task), "POST", "/v1/models/{id}/tasks")
        #expect(over.status == 422 && over.text.contains("max_ledger_rows_per_model") && over.text.contains("320"), "\(over.text)")
        task["epochs"] = 3
        // Two tasks admitted while the model has one: the worker holds the second to the limit once the first is in.
        let a = checked(try c.json("POST", "/v1/models/\(model)/tasks", task), "POST", "/v1/models/{id}/tasks")
        task["epochs"] = 1
        let b = checked(try c.json("POST", "/v1/models/\(model)/tasks", task), "POST", "/v1/models/{id}/tasks")
        #expect(a.status == 202 && b.status == 202, "\(a.text) \(b.text)")
        h.service.startWorkers()
        #expect(try h.waitForJob(a.object["id"] as? String ?? "")["state"] as? String == "succeeded")
        let refused = try h.waitForJob(b.object["id"] as? String ?? "")
        #expect(refused["state"] as? String == "failed" && "\(refused["error"] ?? "")".contains("max_ledger_rows_per_model"), "\(refused)")
        #expect(try usage(h, model) == ContinualUsage(taskVersions: 2, ledgerRows: 340))

        // Task 3 of 3 fits; a fourth is refused at once, streamed or queued.
        #expect(try stream(c, model, rows: 20).status == 201)
        let fourth = try stream(c, model, rows: 20)
        #expect(fourth.status == 422 && fourth.text.contains("max_tasks_per_model"), "\(fourth.text)")
        let queued = checked(try c.json("POST", "/v1/models/\(model)/tasks", task), "POST", "/v1/models/{id}/tasks")
        #expect(queued.status == 422 && queued.text.contains("max_tasks_per_model"), "\(queued.text)")
        #expect(try usage(h, model) == ContinualUsage(taskVersions: 3, ledgerRows: 360))
        let metrics = try c.request("GET", "/v1/models/\(model)/tasks/metrics")
        #expect((metrics.object["tasks"] as? [Any])?.count == 3, "\(metrics.text)")
    }

    /// The writer counts again inside its transaction: a task that got past every earlier check
    /// (admitted beside another) writes nothing once the model is full.
    @Test(arguments: Backend.all)
    func theVersionWriterHoldsATaskToTheLimitsInItsTransaction(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            let tenant = try h.tenantID()
            let model = try h.client.json("POST", "/v1/models", ["name": "w", "kind": "pfc", "input_dim": 16, "output_dim": 3, "basis": 64,
                                                                 "iterations": 10]).object["id"] as? String ?? ""
            #expect(try stream(h.client, model, rows: 40).status == 201)
            let network = try ModelFile.decode(Array(try h.store.modelWeights(modelID: model, version: 1, tenantID: tenant)))
            func commit(rows: Int, limits: ServiceLimits) throws {
                let batch = LedgerBatch(task: 2, epoch: 1, batchIndex: 0, rows: Array(0..<rows), windows: [0..<2], datasetID: nil)
                try VersionWriter(store: h.store).commit(VersionCommit(modelID: model, tenantID: tenant, parentVersion: 1, reason: .task,
                                                                       network: network, metrics: VersionMetrics(), ledger: [batch],
                                                                       continualLimits: limits))
            }
            var limits = ServiceLimits()
            limits.maxTasksPerModel = 1
            let full = #expect(throws: HTTPError.self) { try commit(rows: 5, limits: limits) }
            #expect(full?.status == .unprocessableContent && full?.message.contains("max_tasks_per_model") == true, "\(String(describing: full))")
            limits.maxTasksPerModel = 2
            limits.maxLedgerRowsPerModel = 44
            let long = #expect(throws: HTTPError.self) { try commit(rows: 5, limits: limits) }
            #expect(long?.status == .unprocessableContent && long?.message.contains("max_ledger_rows_per_model") == true
                    && long?.message.contains("beside the 40") == true, "\(String(describing: long))")
            #expect(try usage(h, model) == ContinualUsage(taskVersions: 1, ledgerRows: 40))
            #expect(try h.store.modelVersions(modelID: model, tenantID: tenant).items.count == 2)
            try commit(rows: 4, limits: limits)
            #expect(try usage(h, model) == ContinualUsage(taskVersions: 2, ledgerRows: 44))
        }
    }
}
