import Foundation
import Testing
@testable import Service
@testable import Storage

/// Recurrent models through the API: sequential digits (each 8×8 digit read row by row, T = 8, d = 8).
@Suite(.serialized) struct SequenceModelTests {
    @Test(arguments: Backend.all)
    func sequentialDigitsThroughTheAPI(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            let c = h.client
            let v = try OpenAPIValidator()
            func checked(_ r: TestResponse, _ m: String, _ p: String) -> TestResponse {
                let problems = v.problems(method: m, path: p, status: r.status, contentType: r.header("Content-Type"), body: r.body)
                #expect(problems.isEmpty, "\(m) \(p): \(problems)")
                return r
            }
            let csv = try Data(contentsOf: ServiceHarness.fixture("digits_train.csv"))
            let ds = try c.request("POST", "/v1/datasets?name=digits&sequence_length=8&step_features=8", body: csv,
                                   contentType: "text/csv").object["id"] as! String
            #expect(try c.request("POST", "/v1/datasets?name=d&sequence_length=7&step_features=8", body: csv, contentType: "text/csv").status == 422)

            // Bad shapes are refused before anything is stored.
            let noT = try c.json("POST", "/v1/models", ["name": "r", "kind": "factorized_rnn", "input_dim": 8, "output_dim": 10])
            #expect(noT.status == 422 && noT.errorMessage.contains("sequence_length"))
            let wrongT = try c.json("POST", "/v1/models", ["name": "r", "kind": "rnn", "input_dim": 8, "output_dim": 10, "sequence_length": 7])
            let wrongID = wrongT.object["id"] as! String
            let refused = try c.json("POST", "/v1/models/\(wrongID)/train", ["dataset_id": ds])
            #expect(refused.status == 422 && refused.errorMessage.contains("56"), "\(refused.text)")

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
}
