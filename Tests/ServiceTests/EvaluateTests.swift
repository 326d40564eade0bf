import Foundation
import Testing
import TestSupport
@testable import Linalg
@testable import PFC
@testable import Service
@testable import Storage

/// `POST /v1/models/{id}/evaluate` (issue 16): at once and as a job, every kind, stored on the
/// version, bad input refused with nothing stored; over real sockets on both stores.
@Suite(.serialized) struct EvaluateTests {
    /// The digits test fixture (359 rows).
    static func digitsTest() throws -> (rows: [[Double]], labels: [Int]) {
        let text = try String(contentsOf: ServiceHarness.fixture("digits_test.csv"), encoding: .utf8)
        var rows: [[Double]] = [], labels: [Int] = []
        for line in text.split(separator: "\n") {
            let f = line.split(separator: ",").compactMap { Double($0) }
            guard f.count == 65 else { continue }  // the header
            labels.append(Int(f[0]))
            rows.append(Array(f.dropFirst()))
        }
        return (rows, labels)
    }

    static func labeled(_ rows: [[Double]], _ labels: [Int], classes: Int, perExample: Int = 1) -> LabeledDataset {
        var m = Matrix(rows: rows.count, cols: rows[0].count)
        for (i, r) in rows.enumerated() { for (j, v) in r.enumerated() { m[i, j] = Float(v) } }
        return LabeledDataset(features: m, labels: labels, classes: classes, labelsPerExample: perExample)
    }

    /// The stored network of a version, as the service evaluates it.
    static func network(_ h: ServiceHarness, _ model: String, _ version: Int) throws -> any Network {
        try ModelFile.decode(Array(try h.store.modelWeights(modelID: model, version: version, tenantID: try h.tenantID())))
    }

    /// The confusion matrix counted here from the network's own predictions, in the service's chunks.
    static func confusion(_ network: any Network, _ data: LabeledDataset) -> [[Int]] {
        let c = network.architecture.outputDim
        var m = [[Int]](repeating: [Int](repeating: 0, count: c), count: c)
        var start = 0
        while start < data.count {
            let end = min(data.count, start + 500)
            let (x, labels) = data.batch(start..<end)
            for (p, l) in zip(network.predict(x).columnArgmax(), labels) { m[l][p] += 1 }
            start = end
        }
        return m
    }

    func evaluationCount(_ h: ServiceHarness, _ model: String, _ version: Int) throws -> Int {
        try h.store.evaluations(modelID: model, version: version, tenantID: try h.tenantID(), page: PageRequest(limit: 1000, offset: 0)).items.count
    }

    /// Checks an evaluation document against a local Trainer.evaluate and confusion count.
    func expectMatches(_ e: [String: Any], network: any Network, data: LabeledDataset, sourceLocation: SourceLocation = #_sourceLocation) {
        let reference = Trainer.evaluate(network, on: data)
        #expect(abs((e["accuracy"] as? Double ?? -1) - Double(reference.accuracy)) < 1e-6, "\(e["accuracy"] ?? "nil") vs \(reference)", sourceLocation: sourceLocation)
        #expect(abs((e["loss"] as? Double ?? -1) - Double(reference.loss)) < 1e-5 * max(1, Double(reference.loss)), "\(e["loss"] ?? "nil") vs \(reference)", sourceLocation: sourceLocation)
        let matrix = e["confusion_matrix"] as? [[Int]] ?? []
        #expect(matrix == Self.confusion(network, data), sourceLocation: sourceLocation)
        let classes = e["classes"] as? [[String: Any]] ?? []
        #expect(classes.count == network.architecture.outputDim, sourceLocation: sourceLocation)
        for (k, cls) in classes.enumerated() {
            let tp = matrix[k][k], support = matrix[k].reduce(0, +), predicted = matrix.reduce(0) { $0 + $1[k] }
            #expect(cls["class"] as? Int == k && cls["support"] as? Int == support && cls["predicted"] as? Int == predicted, sourceLocation: sourceLocation)
            let precision = predicted > 0 ? Double(tp) / Double(predicted) : nil
            let recall = support > 0 ? Double(tp) / Double(support) : nil
            func close(_ a: Any?, _ b: Double?) -> Bool {
                guard let b else { return a is NSNull }
                return abs((a as? Double ?? -1) - b) < 1e-12
            }
            #expect(close(cls["precision"], precision), "class \(k): \(cls)", sourceLocation: sourceLocation)
            #expect(close(cls["recall"], recall), "class \(k): \(cls)", sourceLocation: sourceLocation)
            if let p = precision, let r = recall, p + r > 0 {
                #expect(abs((cls["f1"] as? Double ?? -1) - 2 * p * r / (p + r)) < 1e-12, "class \(k): \(cls)", sourceLocation: sourceLocation)
            }
        }
    }

    /// A small evaluation answers at once; the same one with `async` is a job with the same result;
    /// both are stored on the version and listed with it.
    @Test(arguments: Backend.all)
    func evaluatesAtOnceAndAsAJob(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            let c = h.client
            let (model, _) = try RegistryTests.trainedModel(h)
            let (rows, labels) = try Self.digitsTest()
            let ds = checked(try c.json("POST", "/v1/datasets", ["name": "digits test", "features": rows, "labels": labels]), "POST", "/v1/datasets")
            let dsID = ds.object["id"] as! String
            let network = try Self.network(h, model, 1)
            let data = Self.labeled(rows, labels, classes: 10)

            let now = checked(try c.json("POST", "/v1/models/\(model)/evaluate", ["dataset_id": dsID]), "POST", "/v1/models/{id}/evaluate")
            #expect(now.status == 200, "\(now.text)")
            let e = now.object
            #expect(e["model_version"] as? Int == 1 && e["dataset_id"] as? String == dsID && e["examples"] as? Int == 359)
            #expect(e["targets"] as? Int == 359 && e["labels"] as? String == "per_example" && e["job_id"] is NSNull)
            expectMatches(e, network: network, data: data)
            #expect((e["accuracy"] as? Double ?? 0) > 0.15, "a trained model beats chance: \(e["accuracy"] ?? "nil")")

            let queued = checked(try c.json("POST", "/v1/models/\(model)/evaluate", ["dataset_id": dsID, "version": 1, "async": true]),
                                 "POST", "/v1/models/{id}/evaluate")
            #expect(queued.status == 202 && queued.object["kind"] as? String == "evaluate", "\(queued.text)")
            let jobID = queued.object["id"] as! String
            #expect(queued.header("Location") == "/v1/jobs/\(jobID)")
            let done = try h.waitForJob(jobID)
            #expect(done["state"] as? String == "succeeded", "\(done)")
            _ = checked(try c.request("GET", "/v1/jobs/\(jobID)"), "GET", "/v1/jobs/{id}")
            let result = done["result"] as? [String: Any] ?? [:]
            #expect(result["job_id"] as? String == jobID)
            #expect(result["accuracy"] as? Double == e["accuracy"] as? Double && result["confusion_matrix"] as? [[Int]] == e["confusion_matrix"] as? [[Int]])
            #expect((done["progress"] as? [String: Any])?["examples_done"] as? Int == 359, "\(done)")
            // Listed with the jobs, and its end event carries the result.
            let listed = checked(try c.request("GET", "/v1/jobs?kind=evaluate&model_id=\(model)"), "GET", "/v1/jobs")
            #expect((listed.object["items"] as? [[String: Any]])?.compactMap { $0["id"] as? String } == [jobID], "\(listed.text)")
            var end: [String: Any] = [:]
            _ = try c.events("/v1/jobs/\(jobID)/events") { name, text in
                if name == "end" { end = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:] }
                return name != "end"
            }
            #expect((end["result"] as? [String: Any])?["id"] as? String == result["id"] as? String)

            // Kept on the version.
            let version = checked(try c.request("GET", "/v1/models/\(model)/versions/1"), "GET", "/v1/models/{id}/versions/{v}")
            let summaries = version.object["evaluations"] as? [[String: Any]] ?? []
            #expect(summaries.compactMap { $0["id"] as? String } == [e["id"] as! String, result["id"] as! String], "\(version.text)")
            #expect(summaries.last?["job_id"] as? String == jobID && version.object["evaluations_next_offset"] is NSNull)
            let list = checked(try c.request("GET", "/v1/models/\(model)/versions/1/evaluations?limit=1"), "GET", "/v1/models/{id}/versions/{v}/evaluations")
            #expect((list.object["items"] as? [[String: Any]])?.first?["confusion_matrix"] as? [[Int]] == e["confusion_matrix"] as? [[Int]])
            #expect(list.object["next_offset"] as? Int == 1, "\(list.text)")
            let v0 = checked(try c.request("GET", "/v1/models/\(model)/versions/0/evaluations"), "GET", "/v1/models/{id}/versions/{v}/evaluations")
            #expect((v0.object["items"] as? [Any])?.isEmpty == true)
            // Version 0 when asked for explicitly.
            let zero = checked(try c.json("POST", "/v1/models/\(model)/evaluate", ["dataset_id": dsID, "version": 0]), "POST", "/v1/models/{id}/evaluate")
            #expect(zero.status == 200 && zero.object["model_version"] as? Int == 0, "\(zero.text)")
            expectMatches(zero.object, network: try Self.network(h, model, 0), data: data)
        }
    }

    /// Unknown or another tenant's model, version or dataset 404; a dataset that does not fit 422
    /// naming both widths; no trained version 409 not_trained; malformed bodies 4xx; nothing stored.
    @Test(arguments: Backend.all)
    func badInputIsRefusedAndNothingStored(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            let c = h.client
            let (model, _) = try RegistryTests.trainedModel(h)
            let (rows, labels) = try Self.digitsTest()
            let dsID = try c.json("POST", "/v1/datasets", ["name": "t", "features": Array(rows.prefix(40)), "labels": Array(labels.prefix(40))]).object["id"] as! String
            let narrow = try c.json("POST", "/v1/datasets", ["name": "narrow", "features": [[0.1, 0.2, 0.3], [0.3, 0.2, 0.1]], "labels": [0, 1]]).object["id"] as! String
            let wide = try c.json("POST", "/v1/datasets", ["name": "labels", "features": [Array(repeating: 0.5, count: 64)], "labels": [12]]).object["id"] as! String
            let untrained = try c.json("POST", "/v1/models", ["name": "u", "kind": "pfc", "input_dim": 64, "output_dim": 10, "basis": 8, "iterations": 4]).object["id"] as! String
            let other = try h.otherTenantClient()
            let theirDS = try other.json("POST", "/v1/datasets", ["name": "x", "features": Array(rows.prefix(5)), "labels": Array(labels.prefix(5))]).object["id"] as! String
            let theirModel = try other.json("POST", "/v1/models", ["name": "x", "kind": "pfc", "input_dim": 64, "output_dim": 10, "basis": 8, "iterations": 4]).object["id"] as! String

            let cases: [(String, Any, Int, String)] = [
                ("nope", ["dataset_id": dsID], 404, "model"),
                (model, ["dataset_id": "nope"], 404, "dataset"),
                (model, ["dataset_id": dsID, "version": 7], 404, "version"),
                (model, ["dataset_id": theirDS], 404, "dataset"),
                (theirModel, ["dataset_id": dsID], 404, "model"),
                (model, ["dataset_id": narrow], 422, "3 features"),
                (model, ["dataset_id": wide], 422, "labels up to 12"),
                (untrained, ["dataset_id": dsID], 409, "not trained"),
                (model, ["dataset_id": dsID, "version": -1], 422, "version"),
                (model, ["dataset_id": dsID, "version": 1.5], 422, "version"),
                (model, ["version": 1], 422, "dataset_id"),
                (model, ["dataset_id": dsID, "async": "yes"], 422, "async"),
            ]
            for (m, body, status, mention) in cases {
                let r = checked(try c.json("POST", "/v1/models/\(m)/evaluate", body), "POST", "/v1/models/{id}/evaluate")
                #expect(r.status == status && r.errorMessage.contains(mention), "\(m) \(body): \(r.status) \(r.text)")
            }
            let narrowMessage = try c.json("POST", "/v1/models/\(model)/evaluate", ["dataset_id": narrow]).errorMessage
            #expect(narrowMessage.contains("3 features") && narrowMessage.contains("64"), "names both: \(narrowMessage)")
            let untrainedCode = try c.json("POST", "/v1/models/\(untrained)/evaluate", ["dataset_id": dsID])
            #expect(untrainedCode.errorCode == "not_trained")
            let notJSON = checked(try c.request("POST", "/v1/models/\(model)/evaluate", body: Data("{".utf8)), "POST", "/v1/models/{id}/evaluate")
            #expect(notJSON.status == 400)
            // Another tenant cannot read the evaluations either.
            let ok = try c.json("POST", "/v1/models/\(model)/evaluate", ["dataset_id": dsID])
            #expect(ok.status == 200)
            let theirs = checked(try other.request("GET", "/v1/models/\(model)/versions/1/evaluations"), "GET", "/v1/models/{id}/versions/{v}/evaluations")
            #expect(theirs.status == 404)
            #expect(checked(try c.request("GET", "/v1/models/\(model)/versions/9/evaluations"), "GET", "/v1/models/{id}/versions/{v}/evaluations").status == 404)
            // Nothing but the one good evaluation was stored, and no job was queued.
            #expect(try evaluationCount(h, model, 1) == 1)
            #expect(try evaluationCount(h, model, 0) == 0)
            #expect(try evaluationCount(h, untrained, 0) == 0)
            let jobs = try c.request("GET", "/v1/jobs?kind=evaluate")
            #expect((jobs.object["items"] as? [Any])?.isEmpty == true, "\(jobs.text)")
        }
    }

    /// The recurrent kinds: the last step of each sequence, or every labelled step (with step accuracy).
    @Test(arguments: Backend.all)
    func recurrentKindsPerSequenceAndPerStep(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            let c = h.client
            let (rows, labels) = try Self.digitsTest()
            let n = 120
            let x = Array(rows.prefix(n)), y = Array(labels.prefix(n))
            // Per-step labels: the digit's label at even steps, none (null) at odd ones.
            let perStep: [[Any]] = y.map { l in (0..<8).map { $0 % 2 == 0 ? l as Any : NSNull() } }
            let seqDS = checked(try c.json("POST", "/v1/datasets", ["name": "seq", "features": x, "labels": y, "sequence_length": 8, "step_features": 8]), "POST", "/v1/datasets")
            let stepDS = checked(try c.json("POST", "/v1/datasets", ["name": "steps", "features": x, "labels": perStep, "sequence_length": 8, "step_features": 8]), "POST", "/v1/datasets")
            #expect(seqDS.status == 201 && stepDS.status == 201, "\(seqDS.text) \(stepDS.text)")
            for kind in ["factorized_rnn", "rnn"] {
                let m = checked(try c.json("POST", "/v1/models", ["name": kind, "kind": kind, "input_dim": 8, "output_dim": 10, "sequence_length": 8, "basis": 12, "iterations": 4]),
                                "POST", "/v1/models")
                #expect(m.status == 201, "\(m.text)")
                let id = m.object["id"] as! String
                let job = try c.json("POST", "/v1/models/\(id)/train", ["dataset_id": stepDS.object["id"] as! String, "epochs": 1, "validation_fraction": 0])
                #expect(try h.waitForJob(job.object["id"] as! String)["state"] as? String == "succeeded")
                let network = try Self.network(h, id, 1)

                let last = checked(try c.json("POST", "/v1/models/\(id)/evaluate", ["dataset_id": seqDS.object["id"] as! String]), "POST", "/v1/models/{id}/evaluate")
                #expect(last.status == 200 && last.object["labels"] as? String == "per_example" && last.object["targets"] as? Int == n, "\(last.text)")
                #expect(last.object["step_accuracy"] == nil)
                expectMatches(last.object, network: network, data: Self.labeled(x, y, classes: 10))

                let steps = checked(try c.json("POST", "/v1/models/\(id)/evaluate", ["dataset_id": stepDS.object["id"] as! String, "async": true]),
                                    "POST", "/v1/models/{id}/evaluate")
                #expect(steps.status == 202)
                let done = try h.waitForJob(steps.object["id"] as! String)
                let e = done["result"] as? [String: Any] ?? [:]
                #expect(e["labels"] as? String == "per_step" && e["targets"] as? Int == n * 4, "\(done)")
                let flat = y.flatMap { l in (0..<8).map { $0 % 2 == 0 ? l : -1 } }
                let data = Self.labeled(x, flat, classes: 10, perExample: 8)
                let reference = Trainer.evaluate(network, on: data)
                #expect(abs((e["accuracy"] as? Double ?? -1) - Double(reference.accuracy)) < 1e-6 && abs((e["loss"] as? Double ?? -1) - Double(reference.loss)) < 1e-5)
                let stepAccuracy = e["step_accuracy"] as? [Any] ?? []
                #expect(stepAccuracy.count == 8 && stepAccuracy.enumerated().allSatisfy { t, a in t % 2 == 0 ? a is Double : a is NSNull }, "\(stepAccuracy)")
                let mean = stepAccuracy.compactMap { $0 as? Double }.reduce(0, +) / 4
                #expect(abs(mean - (e["accuracy"] as? Double ?? -1)) < 1e-9, "every labelled step has n targets, so the mean of the steps is the accuracy")
                #expect((e["confusion_matrix"] as? [[Int]])?.joined().reduce(0, +) == n * 4)
            }
        }
    }

    /// An evaluate job stops at a cancel request between chunks and stores nothing (the runner run
    /// here on a claimed job; no workers run, so nothing else touches it).
    @Test(arguments: Backend.all)
    func cancelledEvaluationStoresNothing(backend: Backend) throws {
        let location = HarnessLocation(backend)
        let h = try ServiceHarness(location, startWorkers: false, destroysLocation: true)
        defer { h.stop() }
        let c = h.client
        let arch = Architecture(kind: .pfc, inputDim: 64, outputDim: 10, basis: 8, iterations: 4)
        let imported = checked(try c.request("POST", "/v1/models/import?name=imp", body: Data(ModelFile.encode(NetworkFactory.make(arch, seed: 3))),
                                             contentType: "application/octet-stream"), "POST", "/v1/models/import")
        #expect(imported.status == 201, "\(imported.text)")
        let model = imported.object["id"] as! String
        let (rows, labels) = try Self.digitsTest()
        let ds = try c.json("POST", "/v1/datasets", ["name": "t", "features": rows, "labels": labels]).object["id"] as! String
        let queued = try c.json("POST", "/v1/models/\(model)/evaluate", ["dataset_id": ds, "async": true])
        #expect(queued.status == 202, "\(queued.text)")
        guard let job = try h.store.claimJob(owner: "test", leaseDuration: 60) else { Issue.record("nothing to claim"); return }
        #expect(job.id == queued.object["id"] as? String)
        let cancel = checked(try c.request("DELETE", "/v1/jobs/\(job.id)"), "DELETE", "/v1/jobs/{id}")
        #expect(cancel.status == 200 && cancel.object["cancel_requested"] as? Bool == true, "\(cancel.text)")
        guard case .evaluate(let params) = try JobParams.decode(job, limits: ServiceLimits()) else { Issue.record("not an evaluate job"); return }
        EvaluationRunner(workers: h.service.workers, job: job, owner: "test", params: params).run()
        let after = try h.store.job(id: job.id, tenantID: try h.tenantID())
        #expect(after.state == .cancelled, "\(after.state)")
        #expect(try evaluationCount(h, model, 1) == 0)
        // The same job run to its end stores its evaluation with its completion.
        let again = try c.json("POST", "/v1/models/\(model)/evaluate", ["dataset_id": ds, "async": true])
        guard let second = try h.store.claimJob(owner: "test", leaseDuration: 60), case .evaluate(let p) = try JobParams.decode(second, limits: ServiceLimits()) else {
            Issue.record("nothing to claim"); return
        }
        #expect(second.id == again.object["id"] as? String)
        EvaluationRunner(workers: h.service.workers, job: second, owner: "test", params: p).run()
        #expect(try h.store.job(id: second.id, tenantID: try h.tenantID()).state == .succeeded)
        #expect(try evaluationCount(h, model, 1) == 1)
    }
}
