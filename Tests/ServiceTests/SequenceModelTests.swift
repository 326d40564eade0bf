import Foundation
import Testing
@testable import Service
@testable import Storage
import TestSupport

/// Recurrent models through the API: sequential digits (each 8×8 digit read row by row, T = 8, d = 8).
@Suite(.serialized) struct SequenceModelTests {
    @Test(arguments: Backend.all)
    func sequentialDigitsThroughTheAPI(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            let c = h.client
            let csv = try Data(contentsOf: ServiceHarness.fixture("digits_train.csv"))
            let uploaded = try c.request("POST", "/v1/datasets?name=digits&sequence_length=8&step_features=8", body: csv, contentType: "text/csv")
            #expect(uploaded.object["sequence_length"] as? Int == 8 && uploaded.object["step_features"] as? Int == 8)
            #expect(uploaded.object["labels_per_step"] as? Bool == false)
            let ds = uploaded.object["id"] as! String
            #expect(try c.request("POST", "/v1/datasets?name=d&sequence_length=7&step_features=8", body: csv, contentType: "text/csv").status == 422)

            // Bad shapes are refused before anything is stored.
            let noT = try c.json("POST", "/v1/models", ["name": "r", "kind": "factorized_rnn", "input_dim": 8, "output_dim": 10])
            #expect(noT.status == 422 && noT.errorMessage.contains("sequence_length"))
            let wrongT = try c.json("POST", "/v1/models", ["name": "r", "kind": "rnn", "input_dim": 8, "output_dim": 10, "sequence_length": 7])
            let wrongID = wrongT.object["id"] as! String
            let refused = try c.json("POST", "/v1/models/\(wrongID)/train", ["dataset_id": ds])
            #expect(refused.status == 422 && refused.errorMessage.contains("sequence_length 7"), "\(refused.text)")

            let (inputs, labels) = try EndToEndTests.testRows()
            // A nested JSON dataset and nested NDJSON lines are stored flat, step after step.
            let nestedRows = inputs.prefix(4).map { row in (0..<8).map { t in Array(row[(t * 8)..<((t + 1) * 8)]) } }
            let nj = try c.json("POST", "/v1/datasets", ["name": "nested", "features": nestedRows, "labels": Array(labels.prefix(4))])
            #expect(nj.status == 201 && nj.object["features"] as? Int == 64, "\(nj.text)")
            let line = String(decoding: try JSONSerialization.data(withJSONObject: ["features": nestedRows[0], "label": labels[0]]), as: UTF8.self)
            let nd = try c.request("POST", "/v1/datasets?name=nd", body: Data((line + "\n" + line).utf8), contentType: "application/x-ndjson")
            #expect(nd.status == 201 && nd.object["features"] as? Int == 64, "\(nd.text)")
            for kind in ["factorized_rnn", "rnn"] {
                let created = checked(try c.json("POST", "/v1/models", ["name": kind, "kind": kind, "input_dim": 8, "output_dim": 10,
                                                                        "hidden": 64, "sequence_length": 8, "bptt": true]), "POST", "/v1/models")
                #expect(created.status == 201 && created.object["sequence_length"] as? Int == 8, "\(created.text)")
                let modelID = created.object["id"] as! String
                let job = try c.json("POST", "/v1/models/\(modelID)/train", ["dataset_id": ds, "epochs": 15, "batch_size": 50,
                                                                            "learning_rate": 0.002, "weight_decay": 0.00001])
                let done = try h.waitForJob(job.object["id"] as! String)
                #expect(done["state"] as? String == "succeeded", "\(done)")
                let p = checked(try c.json("POST", "/v1/models/\(modelID)/predict", ["inputs": inputs, "top": 2]),
                                "POST", "/v1/models/\(modelID)/predict")
                let predictions = p.object["predictions"] as? [Int] ?? []
                let accuracy = Double(zip(predictions, labels).filter { $0 == $1 }.count) / Double(labels.count)
                #expect(accuracy >= 0.85, "\(kind) held-out accuracy \(accuracy)")
                let explanations = p.object["explanations"] as? [[[String: Any]]] ?? []
                if kind == "factorized_rnn" {
                    // Per step t (reported as `block`), the top components of h_t.
                    #expect(explanations.first?.count == 16)
                    #expect(Set(explanations.first?.compactMap { $0["block"] as? Int } ?? []) == Set(0..<8))
                } else {
                    #expect(explanations.first?.isEmpty == true)
                }
                // The same examples nested as [T][d] predict the same.
                let nested = inputs.prefix(20).map { row in (0..<8).map { t in Array(row[(t * 8)..<((t + 1) * 8)]) } }
                let q = checked(try c.json("POST", "/v1/models/\(modelID)/predict", ["inputs": nested]), "POST", "/v1/models/\(modelID)/predict")
                #expect(q.object["predictions"] as? [Int] == Array(predictions.prefix(20)))
            }
        }
    }

    /// Delayed echo (x_t a one-hot symbol of 3, the label at step t the symbol of step t−1, none at
    /// step 0) as nested JSON with per-step labels, `null` where there is no target.
    static func echo(_ n: Int, steps t: Int, seed: UInt64) -> (features: [[[Double]]], labels: [[Int?]]) {
        var state = seed &* 6364136223846793005 &+ 1442695040888963407
        var features: [[[Double]]] = [], labels: [[Int?]] = []
        for _ in 0..<n {
            var steps: [[Double]] = [], labs: [Int?] = [], previous: Int? = nil
            for _ in 0..<t {
                state = state &* 6364136223846793005 &+ 1442695040888963407
                let symbol = Int((state >> 33) % 3)
                var x = [0.0, 0.0, 0.0]; x[symbol] = 1
                steps.append(x); labs.append(previous); previous = symbol
            }
            features.append(steps); labels.append(labs)
        }
        return (features, labels)
    }

    @Test(arguments: Backend.all)
    func perStepLabelsThroughTheAPI(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            let c = h.client
            func labelsJSON(_ l: [[Int?]]) -> [[Any]] { l.map { $0.map { $0.map { $0 as Any } ?? NSNull() } } }
            let train = Self.echo(400, steps: 6, seed: 1), test = Self.echo(50, steps: 6, seed: 2)
            let created = checked(try c.json("POST", "/v1/datasets", ["name": "echo", "features": train.features,
                                                                     "labels": labelsJSON(train.labels)]), "POST", "/v1/datasets")
            #expect(created.status == 201, "\(created.text)")
            let ds = created.object["id"] as! String
            let stored = checked(try c.request("GET", "/v1/datasets/\(ds)"), "GET", "/v1/datasets/{id}").object
            #expect(stored["sequence_length"] as? Int == 6 && stored["step_features"] as? Int == 3 && stored["features"] as? Int == 18)
            #expect(stored["labels_per_step"] as? Bool == true && stored["classes"] as? Int == 3)

            // Refusals name the problem and store nothing.
            let count = { (try c.request("GET", "/v1/datasets?limit=100").object["items"] as? [Any])?.count ?? -1 }
            let before = try count()
            let flat = train.features.prefix(3).map { $0.flatMap { $0 } }
            let bad: [(String, [String: Any], String)] = [
                ("per-step labels on flat rows", ["name": "x", "features": flat, "labels": labelsJSON(Array(train.labels.prefix(3)))], "sequence dataset"),
                ("wrong label count", ["name": "x", "features": Array(train.features.prefix(2)), "labels": [[1, 2], [1, 2]]], "2 per-step labels"),
                ("mixed label forms", ["name": "x", "features": Array(train.features.prefix(2)), "labels": [labelsJSON([train.labels[0]])[0], 1]], "label every example once"),
                ("no target", ["name": "x", "features": Array(train.features.prefix(1)), "labels": [[NSNull(), NSNull(), NSNull(), NSNull(), NSNull(), NSNull()]]], "null"),
                ("declared form disagrees", ["name": "x", "features": Array(train.features.prefix(1)), "labels": [1], "sequence_length": 3, "step_features": 6], "declare"),
                ("half a form", ["name": "x", "features": flat, "labels": [0, 1, 2], "sequence_length": 6], "both or neither"),
                ("huge step_features", ["name": "x", "features": [[1, 2]], "labels": [0], "sequence_length": 2,
                                        "step_features": 4_611_686_018_427_387_904], "step_features"),
            ]
            for (name, body, mention) in bad {
                let r = checked(try c.json("POST", "/v1/datasets", body), "POST", "/v1/datasets")
                #expect(r.status == 422 && r.errorMessage.contains(mention), "\(name): \(r.status) \(r.text)")
            }
            let hugeCSV = try c.request("POST", "/v1/datasets?name=h&sequence_length=2&step_features=4611686018427387904",
                                        body: Data("0,1,2\n".utf8), contentType: "text/csv")
            #expect(hugeCSV.status == 422 && hugeCSV.errorMessage.contains("step_features"), "\(hugeCSV.text)")
            #expect(try count() == before)
            // Nested NDJSON lines with per-step labels.
            let lines = (0..<3).map { i in
                String(decoding: try! JSONSerialization.data(withJSONObject: ["features": train.features[i], "label": labelsJSON([train.labels[i]])[0]]), as: UTF8.self)
            }
            let nd = checked(try c.request("POST", "/v1/datasets?name=nd", body: Data(lines.joined(separator: "\n").utf8), contentType: "application/x-ndjson"),
                             "POST", "/v1/datasets")
            #expect(nd.status == 201 && nd.object["labels_per_step"] as? Bool == true && nd.object["sequence_length"] as? Int == 6, "\(nd.text)")

            // A PFC model cannot learn per-step labels, nor predict every step.
            let pfc = try c.json("POST", "/v1/models", ["name": "p", "kind": "pfc", "input_dim": 18, "output_dim": 3, "basis": 8, "iterations": 5])
            let pfcID = pfc.object["id"] as! String
            let refused = checked(try c.json("POST", "/v1/models/\(pfcID)/train", ["dataset_id": ds]), "POST", "/v1/models/{id}/train")
            #expect(refused.status == 422 && refused.errorMessage.contains("labelled per step"), "\(refused.text)")
            let noSteps = try c.json("POST", "/v1/models/\(pfcID)/predict", ["inputs": [Array(repeating: 0.0, count: 18)], "every_step": true])
            #expect(noSteps.status == 422 && noSteps.errorMessage.contains("every_step"))

            let model = try c.json("POST", "/v1/models", ["name": "echo", "kind": "rnn", "input_dim": 3, "output_dim": 3, "hidden": 16,
                                                          "sequence_length": 6, "bptt": true])
            #expect(model.status == 201, "\(model.text)")
            let modelID = model.object["id"] as! String
            let job = try c.json("POST", "/v1/models/\(modelID)/train", ["dataset_id": ds, "epochs": 25, "batch_size": 25, "learning_rate": 0.01])
            #expect(job.status == 202, "\(job.text)")
            let done = try h.waitForJob(job.object["id"] as! String)
            #expect(done["state"] as? String == "succeeded", "\(done)")
            let p = checked(try c.json("POST", "/v1/models/\(modelID)/predict", ["inputs": test.features, "every_step": true]),
                            "POST", "/v1/models/{id}/predict")
            let steps = p.object["step_predictions"] as? [[Int]] ?? []
            #expect(steps.count == 50 && steps.allSatisfy { $0.count == 6 })
            var right = 0, total = 0
            for (pred, labs) in zip(steps, test.labels) {
                for (yhat, y) in zip(pred, labs) where y != nil { total += 1; if yhat == y { right += 1 } }
            }
            #expect(total == 250 && Double(right) / Double(total) >= 0.95, "per-step held-out accuracy \(right)/\(total)")
            #expect((p.object["predictions"] as? [Int]) == steps.map { $0.last! })
            // Inputs nested in another shape than the model's T × d are refused, not silently re-split.
            let misnested = try c.json("POST", "/v1/models/\(modelID)/predict", ["inputs": [[[1, 0, 0, 0, 1, 0], [0, 0, 1, 1, 0, 0], [0, 1, 0, 0, 0, 1]]]])
            #expect(misnested.status == 422 && misnested.errorMessage.contains("sequence_length 6 × input_dim 3"), "\(misnested.text)")
            // Without every_step the answer has no step_predictions.
            let q = try c.json("POST", "/v1/models/\(modelID)/predict", ["inputs": Array(test.features.prefix(2))])
            #expect(q.status == 200 && q.object["step_predictions"] == nil)
        }
    }
}
