import Foundation
import Testing
@testable import PFC
@testable import Service
@testable import Storage
import TestSupport

/// Task increments with the sliding window, the batch ledger, and forgetting, through the API.
@Suite(.serialized) struct ContinualTests {
    func digits(_ classes: Set<Int>) throws -> (rows: [[Double]], labels: [Int]) {
        let text = try String(contentsOf: ServiceHarness.fixture("digits_train.csv"), encoding: .utf8)
        var rows: [[Double]] = [], labels: [Int] = []
        for line in text.split(separator: "\n").dropFirst() {
            let f = line.split(separator: ",").map { Double($0)! }
            guard classes.contains(Int(f[0])) else { continue }
            labels.append(Int(f[0]))
            rows.append(Array(f.dropFirst()))
        }
        return (rows, labels)
    }

    func weights(_ h: ServiceHarness, _ modelID: String, _ version: Int, tenant: String) throws -> [Parameter] {
        try ModelFile.decode(Array(try h.store.modelWeights(modelID: modelID, version: version, tenantID: tenant))).parameters
    }

    @Test(arguments: Backend.all)
    func tasksLedgerAndForgetting(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            let c = h.client
            let tenant = try h.tenantID()

            let (r1, l1) = try digits([0, 1])
            let (r2, l2) = try digits([2, 3])
            let d1 = try c.json("POST", "/v1/datasets", ["name": "task1", "features": r1, "labels": l1]).object["id"] as! String
            let d2 = try c.json("POST", "/v1/datasets", ["name": "task2", "features": r2, "labels": l2]).object["id"] as! String
            let model = try c.json("POST", "/v1/models", ["name": "cl", "kind": "pfc", "input_dim": 64, "output_dim": 10, "basis": 40,
                                                          "iterations": 15, "loss": "images_labels_mse"])
            let modelID = model.object["id"] as! String

            // Task 1: deterministic window w 6, s 0.5, batches of 50, two epochs (window reset each epoch).
            let task = ["name": "zeros-and-ones", "dataset_id": d1, "epochs": 2, "batch_size": 50, "window": 6, "slide": 0.5,
                        "deterministic": true, "validation_fraction": 0, "early_stopping": NSNull(), "learning_rate": 0.003] as [String: Any]
            let t1 = checked(try c.json("POST", "/v1/models/\(modelID)/tasks", task), "POST", "/v1/models/\(modelID)/tasks")
            #expect(t1.status == 202, "\(t1.text)")
            let done1 = try h.waitForJob(t1.object["id"] as! String)
            #expect(done1["state"] as? String == "succeeded", "\(done1)")

            // The ledger: one row per optimizer step, windows [⌊0.5j⌋, ⌊0.5j + 6⌋) for batch j of each epoch.
            let ledger = checked(try c.request("GET", "/v1/models/\(modelID)/ledger"), "GET", "/v1/models/\(modelID)/ledger").object["items"] as! [[String: Any]]
            let batches = (r1.count + 49) / 50
            #expect(ledger.count == 2 * batches)
            for e in ledger {
                let j = e["batch_index"] as! Int
                let w = (e["windows"] as! [[Int]])[0]
                #expect(w == [Int((0.5 * Double(j)).rounded(.down)), Int((0.5 * Double(j) + 6).rounded(.down))])
                #expect((e["rows"] as! [Int]).count == min(50, r1.count - 50 * j))
            }
            let tasks = checked(try c.request("GET", "/v1/models/\(modelID)/tasks"), "GET", "/v1/models/\(modelID)/tasks").object["items"] as! [[String: Any]]
            #expect(tasks.count == 1 && tasks[0]["task"] as? Int == 1 && tasks[0]["model_version"] as? Int == 1)

            // Task 2 continues the window; too long a task is refused with the K it needs, unless it may grow.
            var long = task
            long["dataset_id"] = d2; long["name"] = "twos-and-threes"; long["deterministic"] = false; long["epochs"] = 40
            let refused = try c.json("POST", "/v1/models/\(modelID)/tasks", long)
            #expect(refused.status == 422 && refused.errorMessage.contains("needs K ="), "\(refused.text)")
            long["grow"] = true
            let t2 = try c.json("POST", "/v1/models/\(modelID)/tasks", long)
            let done2 = try h.waitForJob(t2.object["id"] as! String)
            #expect(done2["state"] as? String == "succeeded", "\(done2)")
            let tasks2 = try c.request("GET", "/v1/models/\(modelID)/tasks").object["items"] as! [[String: Any]]
            #expect(tasks2.count == 2 && (tasks2[1]["grew_by"] as? Int ?? 0) > 0)
            let v2 = try weights(h, modelID, 2, tenant: tenant)
            #expect(v2[0].value.cols > 40)
            // The model reports the grown basis.
            #expect(try c.request("GET", "/v1/models/\(modelID)").object["basis"] as? Int == v2[0].value.cols)

            // Forget task 1: a dry run writes nothing.
            let versionsBefore = try h.store.modelVersions(modelID: modelID, tenantID: tenant).items.count
            let dry = checked(try c.json("POST", "/v1/models/\(modelID)/forget", ["task": 1, "dry_run": true, "evaluate_on": d1]),
                              "POST", "/v1/models/\(modelID)/forget")
            #expect(dry.status == 200 && dry.object["version_created"] as? Bool == false, "\(dry.text)")
            #expect(dry.object["audit_id"] is NSNull)
            let noAudits = checked(try c.request("GET", "/v1/models/\(modelID)/forgets"), "GET", "/v1/models/\(modelID)/forgets")
            #expect(noAudits.status == 200 && (noAudits.object["items"] as? [Any])?.isEmpty == true)
            let expected = Set(ledger.flatMap { e -> [Int] in let w = (e["windows"] as! [[Int]])[0]; return Array(w[0]..<w[1]) })
            #expect(Set(dry.object["columns_reset"] as! [Int]) == expected)
            #expect(try h.store.modelVersions(modelID: modelID, tenantID: tenant).items.count == versionsBefore)
            #expect((dry.object["collateral_batches"] as! [String]).isEmpty == false) // task 2 continued in shared columns

            // For real: exactly those columns become zero in every matrix, everything else bit-identical.
            let real = try c.json("POST", "/v1/models/\(modelID)/forget", ["task": 1])
            #expect(real.status == 200 && real.object["version_created"] as? Bool == true, "\(real.text)")
            let newVersion = real.object["model_version"] as! Int
            let after = try weights(h, modelID, newVersion, tenant: tenant)
            for (p, q) in zip(v2, after) {
                for i in 0..<p.value.rows { for k in 0..<p.value.cols {
                    if expected.contains(k) { #expect(q.value[i, k] == 0) } else { #expect(q.value[i, k].bitPattern == p.value[i, k].bitPattern) }
                } }
            }
            #expect(try h.store.modelVersion(modelID: modelID, version: newVersion, tenantID: tenant).reason == .forget)
            // The audit: written with the version, listing the request, the batches and the columns.
            let audits = checked(try c.request("GET", "/v1/models/\(modelID)/forgets"), "GET", "/v1/models/\(modelID)/forgets")
            let audit = try #require((audits.object["items"] as? [[String: Any]])?.first)
            #expect(audit["id"] as? String == real.object["audit_id"] as? String && audit["version"] as? Int == newVersion)
            #expect((audit["request"] as? [String: Any])?["task"] as? Int == 1)
            #expect(Set(audit["columns_reset"] as? [Int] ?? []) == expected)
            #expect(Set(audit["batches"] as? [String] ?? []) == Set(real.object["batches"] as? [String] ?? ["?"]))
            // Repeating changes nothing more; the columns are reported as already reset.
            let again = try c.json("POST", "/v1/models/\(modelID)/forget", ["task": 1])
            #expect(again.object["version_created"] as? Bool == false && (again.object["columns_reset"] as! [Int]).isEmpty)
            #expect(Set(again.object["already_reset"] as! [Int]) == expected)
            // Another tenant cannot see or forget it; bad selectors are 4xx.
            let other = try h.otherTenantClient()
            #expect(try other.json("POST", "/v1/models/\(modelID)/forget", ["task": 1]).status == 404)
            #expect(try c.json("POST", "/v1/models/\(modelID)/forget", ["task": 1, "batches": ["x"]]).status == 422)
            #expect(try c.json("POST", "/v1/models/\(modelID)/forget", ["batches": ["nope"]]).status == 404)
            #expect(try h.store.modelVersions(modelID: modelID, tenantID: tenant).items.count == versionsBefore + 1)
            #expect(try other.request("GET", "/v1/models/\(modelID)/forgets").status == 404)
            // Only the forget that wrote a version is audited; the audit outlives the model.
            #expect(try h.store.forgetAudits(modelID: modelID, tenantID: tenant).items.count == 1)
            #expect(try c.request("DELETE", "/v1/models/\(modelID)").status == 204)
            let kept = checked(try c.request("GET", "/v1/models/\(modelID)/forgets"), "GET", "/v1/models/\(modelID)/forgets")
            #expect((kept.object["items"] as? [[String: Any]])?.first?["id"] as? String == audit["id"] as? String)
            #expect(try c.request("GET", "/v1/models/nope/forgets").status == 404)
        }
    }

    @Test(arguments: Backend.all)
    func streamedTaskTrainsAsItArrives(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            let c = h.client
            let tenant = try h.tenantID()
            let model = try c.json("POST", "/v1/models", ["name": "s", "kind": "pfc", "input_dim": 64, "output_dim": 10, "basis": 10, "iterations": 10])
            let modelID = model.object["id"] as! String
            let (rows, labels) = try digits([4, 5])
            func ndjson(_ n: Int) -> Data {
                Data((0..<n).map { i in
                    String(decoding: try! JSONSerialization.data(withJSONObject: ["features": rows[i % rows.count], "label": labels[i % rows.count]]), as: UTF8.self)
                }.joined(separator: "\n").utf8)
            }
            let path = "/v1/models/\(modelID)/tasks/stream?name=fours&batch_size=50&window=4&slide=1&learning_rate=0.003"
            let ok = try c.request("POST", path, body: ndjson(200), contentType: "application/x-ndjson")
            #expect(ok.status == 201, "\(ok.text)")
            let problems = try OpenAPIValidator().problems(method: "POST", path: "/v1/models/\(modelID)/tasks/stream", status: ok.status,
                                                           contentType: ok.header("Content-Type"), body: ok.body)
            #expect(problems.isEmpty, "\(problems)")
            #expect(ok.object["batches"] as? Int == 4 && ok.object["examples"] as? Int == 200 && ok.object["columns"] as? [Int] == [0, 7])
            let ledger = try c.request("GET", "/v1/models/\(modelID)/ledger?task=1").object["items"] as! [[String: Any]]
            #expect(ledger.map { ($0["windows"] as! [[Int]])[0] } == [[0, 4], [1, 5], [2, 6], [3, 7]])
            // The next stream continues at column 4 and would pass K = 10: refused, nothing stored…
            let versions = try h.store.modelVersions(modelID: modelID, tenantID: tenant).items.count
            let refused = try c.request("POST", path, body: ndjson(400), contentType: "application/x-ndjson")
            #expect(refused.status == 422 && refused.errorMessage.contains("nothing was stored"), "\(refused.text)")
            #expect(try h.store.modelVersions(modelID: modelID, tenantID: tenant).items.count == versions)
            // …unless it may grow.
            let grown = try c.request("POST", path + "&grow=true", body: ndjson(400), contentType: "application/x-ndjson")
            #expect(grown.status == 201 && (grown.object["grew_by"] as? Int ?? 0) > 0 && grown.object["task"] as? Int == 2, "\(grown.text)")
            #expect(try c.request("GET", "/v1/models/\(modelID)").object["basis"] as? Int == 10 + (grown.object["grew_by"] as? Int ?? -100))
            #expect(try c.request("POST", path, body: Data("{\"features\":[1]}".utf8), contentType: "application/x-ndjson").status == 422)
        }
    }
}
