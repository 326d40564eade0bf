import Foundation
import Testing
import TestSupport
@testable import Linalg
@testable import PFC
@testable import Service
@testable import Storage

/// `"continue_optimizer"` on `POST /v1/models/{id}/train`: a train job keeps its optimizer
/// statistics with the version it writes, and a follow-on job that continues them trains as one
/// longer job would; a version without statistics is refused (409), a different optimizer too
/// (422), and nothing is queued. Over real sockets on both stores.
@Suite(.serialized) struct ContinueOptimizerServiceTests {
    /// Trains `model` and returns the version written.
    func train(_ h: ServiceHarness, _ model: String, _ body: [String: Any]) throws -> Int {
        let r = checked(try h.client.json("POST", "/v1/models/\(model)/train", body), "POST", "/v1/models/{id}/train")
        #expect(r.status == 202, "\(r.text)")
        let done = try h.waitForJob(r.object["id"] as! String)
        #expect(done["state"] as? String == "succeeded", "\(done)")
        let v = ((done["result"] as? [String: Any])?["model_version"] as? Int) ?? -1
        return v
    }

    func weights(_ h: ServiceHarness, _ model: String, _ version: Int) throws -> [Float] {
        try EvaluateTests.network(h, model, version).parameters.flatMap(\.value.storage)
    }

    /// Uploads the first `rows` digits and returns the dataset's id.
    func digits(_ h: ServiceHarness, rows: Int) throws -> String {
        let (features, labels) = try RegistryTests.digits(limit: rows)
        let ds = checked(try h.client.json("POST", "/v1/datasets", ["name": "d", "features": features, "labels": labels]), "POST", "/v1/datasets")
        return ds.object["id"] as! String
    }

    func model(_ h: ServiceHarness) throws -> String {
        let m = checked(try h.client.json("POST", "/v1/models", ["name": "cont", "kind": "mlp", "input_dim": 64, "output_dim": 10,
                                                                  "hidden": 24, "seed": 4]), "POST", "/v1/models")
        return m.object["id"] as! String
    }

    @Test(arguments: Backend.all)
    func followOnJobsTrainAsOneJob(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            let dsID = try digits(h, rows: 200)
            // One batch per epoch, no validation: the batch order cannot differ between the runs.
            let common: [String: Any] = ["dataset_id": dsID, "batch_size": 200, "validation_fraction": 0,
                                         "early_stopping": NSNull(), "learning_rate": 0.01]
            let whole = try model(h), chained = try model(h), fresh = try model(h)
            #expect(try train(h, whole, common.merging(["epochs": 4]) { $1 }) == 1)
            #expect(try train(h, chained, common.merging(["epochs": 2]) { $1 }) == 1)
            #expect(try train(h, fresh, common.merging(["epochs": 2]) { $1 }) == 1)

            let tenant = try h.tenantID()
            let kept = try #require(try h.store.optimizerState(modelID: chained, version: 1, tenantID: tenant))
            #expect(kept.kind == "rmsprop")
            #expect(try h.store.optimizerState(modelID: chained, version: 0, tenantID: tenant) == nil, "a created version keeps none")

            #expect(try train(h, chained, common.merging(["epochs": 2, "continue_optimizer": true]) { $1 }) == 2)
            #expect(try train(h, fresh, common.merging(["epochs": 2]) { $1 }) == 2)
            let target = try weights(h, whole, 1), a = try weights(h, chained, 2), b = try weights(h, fresh, 2)
            func maxDiff(_ x: [Float], _ y: [Float]) -> Float { zip(x, y).map { abs($0 - $1) }.max() ?? .infinity }
            // Equal up to the summation order of the epoch's one shuffled batch.
            #expect(maxDiff(a, target) < 1e-5, "continued: \(maxDiff(a, target))")
            #expect(maxDiff(b, target) > 1e-3, "afresh the first steps are ±10·lr: \(maxDiff(b, target))")
            // The follow-on job kept its own statistics, which a third job can continue in turn.
            #expect(try h.store.optimizerState(modelID: chained, version: 2, tenantID: tenant) != nil)
        }
    }

    @Test(arguments: Backend.all)
    func versionsWithoutStatisticsAreRefused(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            let dsID = try digits(h, rows: 100)
            let m = try model(h)
            let jobs = try h.store.jobs(tenantID: try h.tenantID(), page: PageRequest(limit: 100, offset: 0)).items.count

            let none = checked(try h.client.json("POST", "/v1/models/\(m)/train", ["dataset_id": dsID, "continue_optimizer": true]),
                               "POST", "/v1/models/{id}/train")
            #expect(none.status == 409, "\(none.text)")
            #expect((none.object["error"] as? [String: Any])?["message"] as? String ?? "" ~= "no optimizer state", "\(none.text)")

            #expect(try train(h, m, ["dataset_id": dsID, "epochs": 1, "validation_fraction": 0]) == 1)
            let other = checked(try h.client.json("POST", "/v1/models/\(m)/train", ["dataset_id": dsID, "continue_optimizer": true, "optimizer": "adam"]),
                                "POST", "/v1/models/{id}/train")
            #expect(other.status == 422, "\(other.text)")
            let old = checked(try h.client.json("POST", "/v1/models/\(m)/train", ["dataset_id": dsID, "continue_optimizer": true, "version": 0]),
                              "POST", "/v1/models/{id}/train")
            #expect(old.status == 409, "\(old.text)")
            let bad = checked(try h.client.json("POST", "/v1/models/\(m)/train", ["dataset_id": dsID, "continue_optimizer": "yes"]),
                              "POST", "/v1/models/{id}/train")
            #expect(bad.status == 400 || bad.status == 422, "\(bad.text)")
            #expect(try h.store.jobs(tenantID: try h.tenantID(), page: PageRequest(limit: 100, offset: 0)).items.count == jobs + 1,
                    "only the one valid request queued a job")
            // Pinned: a newer version written meanwhile does not change what the job continues.
            #expect(try train(h, m, ["dataset_id": dsID, "epochs": 1, "validation_fraction": 0, "continue_optimizer": true, "version": 1]) == 2)
        }
    }
}

extension ContinueOptimizerServiceTests {
    /// A kept state that no longer fits the weights (here: rewritten in the database) fails the job with
    /// a message naming it, and no version is written.
    @Test(arguments: Backend.all)
    func aStateThatDoesNotFitFailsTheJob(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            let dsID = try digits(h, rows: 100)
            let m = try model(h)
            #expect(try train(h, m, ["dataset_id": dsID, "epochs": 1, "validation_fraction": 0]) == 1)
            let wrong = try JSONEncoder().encode(OptimizerState(kind: "rmsprop", buffers: [FloatBuffer([1, 2, 3])], steps: 0))
            try ModelReadCacheTests.rawUpdate(h.store, "UPDATE optimizer_states SET state = \(wrong) WHERE model_id = \(m) AND version = 1")
            let r = checked(try h.client.json("POST", "/v1/models/\(m)/train", ["dataset_id": dsID, "epochs": 1, "continue_optimizer": true]),
                            "POST", "/v1/models/{id}/train")
            #expect(r.status == 202, "\(r.text)")
            let done = try h.waitForJob(r.object["id"] as! String)
            #expect(done["state"] as? String == "failed", "\(done)")
            #expect((done["error"] as? String ?? "").contains("continue_optimizer"), "\(done)")
            #expect(try h.store.latestModelVersion(modelID: m, tenantID: try h.tenantID()).version == 1, "no version written")
        }
    }
}

extension ContinueOptimizerServiceTests {
    /// Without `version`, continue_optimizer continues the version latest when the job starts. Queued
    /// behind a train job of the same model, it continues the statistics that job keeps: the chain
    /// queued at once ends bit for bit where the same jobs sent one after another end. Behind a train
    /// job of another optimizer it fails when it starts; behind a task (whose version keeps no
    /// statistics) it is refused at once.
    @Test(arguments: Backend.all)
    func aContinuedJobQueuedBehindAnotherContinuesWhatThatOneWrites(backend: Backend) throws {
        let location = HarnessLocation(backend)
        defer { location.destroy() }
        let common: [String: Any] = ["batch_size": 100, "validation_fraction": 0, "early_stopping": NSNull(), "learning_rate": 0.01, "epochs": 1]
        var key = "", dsID = "", queued = "", sequential = ""
        do {
            let h = try ServiceHarness(location)
            defer { h.stop() }
            key = h.key
            dsID = try digits(h, rows: 100)
            queued = try model(h)
            sequential = try model(h)
            #expect(try train(h, sequential, common.merging(["dataset_id": dsID]) { $1 }) == 1)
            #expect(try train(h, sequential, common.merging(["dataset_id": dsID, "continue_optimizer": true]) { $1 }) == 2)
        }
        // The same database, its workers started only once every job waits.
        let h = try ServiceHarness(location, key: key, startWorkers: false)
        defer { h.stop() }
        let tenant = try h.tenantID()
        func post(_ body: [String: Any]) throws -> String {
            let r = checked(try h.client.json("POST", "/v1/models/\(queued)/train", common.merging(body) { $1 }), "POST", "/v1/models/{id}/train")
            #expect(r.status == 202, "\(r.text)")
            return r.object["id"] as? String ?? ""
        }
        let first = try post(["dataset_id": dsID])
        // Version 0 keeps no statistics, but the job before it will write version 1 with them.
        let continued = try post(["dataset_id": dsID, "continue_optimizer": true])
        h.service.startWorkers()
        for id in [first, continued] {
            let done = try h.waitForJob(id)
            #expect(done["state"] as? String == "succeeded", "\(done)")
        }
        #expect(try weights(h, queued, 2) == weights(h, sequential, 2), "queued at once = sent one after another, bit for bit")
        #expect(try h.store.modelVersion(modelID: queued, version: 2, tenantID: tenant).parentVersion == 1)

        // Behind a train job of another optimizer: accepted (that job's statistics do not exist yet),
        // failed when it starts, naming both. Behind a task, whose version keeps none: 409 at once.
        h.service.stopWorkers(deadline: .seconds(5))
        let ahead = try post(["dataset_id": dsID])
        let otherKind = try post(["dataset_id": dsID, "continue_optimizer": true, "optimizer": "adam"])
        let task = checked(try h.client.json("POST", "/v1/models/\(queued)/tasks", ["name": "t", "dataset_id": dsID, "window": NSNull(), "epochs": 1]),
                           "POST", "/v1/models/{id}/tasks")
        #expect(task.status == 202, "\(task.text)")
        let behindTask = checked(try h.client.json("POST", "/v1/models/\(queued)/train", common.merging(["dataset_id": dsID, "continue_optimizer": true]) { $1 }),
                                 "POST", "/v1/models/{id}/train")
        #expect(behindTask.status == 409 && behindTask.errorMessage ~= "the task job queued before it", "\(behindTask.text)")
        h.service.startWorkers()
        #expect(try h.waitForJob(ahead)["state"] as? String == "succeeded")
        let failed = try h.waitForJob(otherKind)
        #expect(failed["state"] as? String == "failed" && "\(failed["error"] ?? "")" ~= "version 3 kept rmsprop statistics but this job uses adam",
                "\(failed)")
        #expect(try h.waitForJob(task.object["id"] as? String ?? "")["state"] as? String == "succeeded")
        #expect(try h.store.latestModelVersion(modelID: queued, tenantID: tenant).version == 4, "the task's; nothing else stored")
    }
}

/// `text ~= fragment`: whether `text` contains `fragment`.
private func ~= (text: String, fragment: String) -> Bool { text.contains(fragment) }
