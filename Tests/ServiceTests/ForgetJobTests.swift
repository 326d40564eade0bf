import Foundation
import Testing
import TestSupport
import PFC
@testable import Service
@testable import Storage

/// A forget whose measurements (evaluate_on, reference_dataset_id) are too large to answer at once
/// runs as a `forget` job on the workers: the same answer as the job's result, the version and audit
/// written by the job, and forgets queued behind a model's other jobs applying to the version they leave.
/// Real sockets, both stores.
@Suite(.serialized) struct ForgetJobTests {
    /// 100 training rows of the digits with labels from a fixed LCG and 100 held-out rows.
    func upload(_ c: TestClient) throws -> (train: String, reference: String) {
        let text = try String(contentsOf: ServiceHarness.fixture("digits_train.csv"), encoding: .utf8)
        let rows = text.split(separator: "\n").map { line in line.split(separator: ",").compactMap { Double($0) } }
            .filter { $0.count == 65 }.prefix(200).map { Array($0.dropFirst()) }
        var state: UInt64 = 0x5eed
        func label() -> Int { state = state &* 6364136223846793005 &+ 1442695040888963407; return Int((state >> 33) % 10) }
        func post(_ name: String, _ part: ArraySlice<[Double]>) throws -> String {
            let r = try c.json("POST", "/v1/datasets", ["name": name, "features": Array(part), "labels": part.map { _ in label() }])
            #expect(r.status == 201, "\(r.text)")
            return r.object["id"] as? String ?? ""
        }
        return (try post("members", rows[0..<100]), try post("held out", rows[100..<200]))
    }

    func trainedModel(_ h: ServiceHarness, dataset: String) throws -> String {
        let c = h.client
        let model = try c.json("POST", "/v1/models", ["name": "memo", "kind": "pfc", "input_dim": 64, "output_dim": 10, "basis": 40, "iterations": 10]).object["id"] as! String
        let t = try c.json("POST", "/v1/models/\(model)/tasks", ["name": "memorise", "dataset_id": dataset, "epochs": 5, "batch_size": 20, "window": 8,
                                                                 "slide": 4, "deterministic": true, "validation_fraction": 0, "early_stopping": NSNull(),
                                                                 "learning_rate": 0.01])
        #expect(t.status == 202, "\(t.text)")
        #expect(try h.waitForJob(t.object["id"] as! String)["state"] as? String == "succeeded")
        return model
    }

    /// The document without the fields a second run legitimately changes.
    func comparable(_ o: [String: Any]) -> NSDictionary {
        var o = o
        o["audit_id"] = nil
        return o as NSDictionary
    }

    /// A forget sent while a task of the model runs waits behind it as a job. A task that ran while a
    /// forget committed elsewhere (here straight through `Forgetter`, as a replica that saw no job
    /// ahead) is not stored: it started from the version before the forget, so writing it would put
    /// the forgotten weights back as the newest version. The task fails naming why, the forget's
    /// version stays the latest, and the queued forget then finds nothing left to reset.
    @Test(arguments: Backend.all)
    func aTaskThatRanBesideAForgetDoesNotUndoIt(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            let c = h.client
            let (train, _) = try upload(c)
            let model = try trainedModel(h, dataset: train)
            let long = try c.json("POST", "/v1/models/\(model)/tasks", ["name": "long", "dataset_id": train, "epochs": 60, "batch_size": 20,
                                                                       "window": 8, "slide": 0, "validation_fraction": 0, "early_stopping": NSNull()])
            #expect(long.status == 202, "\(long.text)")
            let jobID = long.object["id"] as? String ?? ""
            let end = Date().addingTimeInterval(120)
            while Date() < end, (try c.request("GET", "/v1/jobs/\(jobID)").object["progress"] as? [String: Any]) == nil {
                Thread.sleep(forTimeInterval: 0.02)
            }
            let queued = checked(try c.json("POST", "/v1/models/\(model)/forget", ["task": 1]), "POST", "/v1/models/{id}/forget")
            #expect(queued.status == 202, "small, but behind the running task: \(queued.text)")
            let forgetter = Forgetter(store: h.store, models: ModelLoader(store: h.store, cache: ModelCache(capacity: 1)),
                                      limits: h.service.configuration.limits)
            let request = try JSONDecoder().decode(ForgetRequest.self, from: Data(#"{"task": 1}"#.utf8))
            let direct = try forgetter.run(try forgetter.plan(request, modelID: model, tenantID: try h.tenantID()))
            #expect(direct.versionCreated && direct.modelVersion == 2, "\(direct)")
            #expect(try c.request("GET", "/v1/jobs/\(jobID)").object["state"] as? String == "running", "the task still ran after the forget")
            let done = try h.waitForJob(jobID)
            #expect(done["state"] as? String == "failed", "\(done)")
            let error = done["error"] as? String ?? ""
            #expect(error.contains("model changed while this task ran") && error.contains("version 1") && error.contains("version 2"), "\(error)")
            let after = try h.waitForJob(queued.object["id"] as? String ?? "")
            let result = after["result"] as? [String: Any] ?? [:]
            #expect(after["state"] as? String == "succeeded" && result["model_version"] as? Int == 2 && result["version_created"] as? Bool == false,
                    "\(after)")
            #expect((result["already_reset"] as? [Int])?.isEmpty == false, "\(result)")
            let versions = try c.request("GET", "/v1/models/\(model)/versions").object["items"] as? [[String: Any]] ?? []
            #expect(versions.map { $0["version"] as? Int } == [0, 1, 2], "\(versions)")
            #expect(versions.last?["reason"] as? String == "forget")
        }
    }

    @Test(arguments: Backend.all)
    func asyncForgetIsAJobWithTheSameAnswer(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            let c = h.client
            let (train, reference) = try upload(c)
            let model = try trainedModel(h, dataset: train)
            let body: [String: Any] = ["task": 1, "reference_dataset_id": reference, "evaluate_on": reference]

            var dry = body; dry["dry_run"] = true
            let now = checked(try c.json("POST", "/v1/models/\(model)/forget", dry), "POST", "/v1/models/{id}/forget")
            #expect(now.status == 200, "\(now.text)")
            dry["async"] = true
            let queued = checked(try c.json("POST", "/v1/models/\(model)/forget", dry), "POST", "/v1/models/{id}/forget")
            #expect(queued.status == 202 && queued.object["kind"] as? String == "forget", "\(queued.text)")
            let jobID = queued.object["id"] as? String ?? ""
            #expect(queued.header("Location") == "/v1/jobs/\(jobID)")
            #expect(queued.object["dataset_id"] as? String == reference)
            let done = checked(try c.request("GET", "/v1/jobs/\(try h.waitForJob(jobID)["id"] as? String ?? "")"), "GET", "/v1/jobs/{id}")
            #expect(done.object["state"] as? String == "succeeded", "\(done.text)")
            let result = done.object["result"] as? [String: Any] ?? [:]
            // Deterministic forward passes: the job measured exactly what the answer at once did.
            #expect(comparable(result) == comparable(now.object), "job \(result) vs at once \(now.object)")
            #expect((result["verification"] as? [String: Any])?["forgotten_examples"] as? Int == 100, "\(result)")
            #expect(result["version_created"] as? Bool == false)
            let listed = checked(try c.request("GET", "/v1/jobs?kind=forget"), "GET", "/v1/jobs").object["items"] as? [[String: Any]] ?? []
            #expect(listed.map { $0["id"] as? String } == [jobID])

            // The real forget as a job: the job writes the version and the audit its result names.
            var real = body; real["async"] = true
            let job = try c.json("POST", "/v1/models/\(model)/forget", real)
            #expect(job.status == 202, "\(job.text)")
            let finished = try h.waitForJob(job.object["id"] as! String)
            #expect(finished["state"] as? String == "succeeded", "\(finished)")
            let r = finished["result"] as? [String: Any] ?? [:]
            #expect(r["version_created"] as? Bool == true && r["model_version"] as? Int == 2, "\(r)")
            #expect((r["columns_reset"] as? [Int])?.isEmpty == false)
            let audits = checked(try c.request("GET", "/v1/models/\(model)/forgets"), "GET", "/v1/models/{id}/forgets").object["items"] as? [[String: Any]] ?? []
            #expect(audits.count == 1 && audits.first?["id"] as? String == r["audit_id"] as? String, "\(audits)")
            #expect(audits.first?["version"] as? Int == 2)
            let stored = audits.first?["verification"] as? [String: Any] ?? [:]
            #expect((stored as NSDictionary) == ((r["verification"] as? [String: Any] ?? [:]) as NSDictionary))
            #expect(try h.store.modelVersions(modelID: model, tenantID: try h.tenantID()).items.count == 3)
        }
    }

    /// With a small `max_predict_work` the verification is a job without asking; a small forget sent
    /// behind it is queued too. Each resolves its selection on the version latest when it runs: the
    /// first on a version written after it was queued, the second on the first's, where its batch is
    /// already reset.
    @Test(arguments: Backend.all)
    func largeForgetIsQueuedAndLaterForgetsWaitTheirTurn(backend: Backend) throws {
        let location = HarnessLocation(backend)
        defer { location.destroy() }
        // 400 rows of passes at K 40, N 10 cost 7.6·10⁶ multiply-adds: above a tenth of 5·10⁷.
        let h = try ServiceHarness(location, startWorkers: true, configure: { $0.limits.maxPredictWork = 50_000_000 })
        defer { h.stop() }
        let c = h.client
        let (train, reference) = try upload(c)
        let model = try trainedModel(h, dataset: train)
        let tenant = try h.tenantID()
        h.service.stopWorkers(deadline: .seconds(5))

        let queued = checked(try c.json("POST", "/v1/models/\(model)/forget", ["task": 1, "reference_dataset_id": reference]),
                             "POST", "/v1/models/{id}/forget")
        #expect(queued.status == 202, "\(queued.text)")
        // A forget without measurements would answer at once; behind the queued one it is a job too.
        let batches = try c.request("GET", "/v1/models/\(model)/ledger").object["items"] as? [[String: Any]] ?? []
        let first = try #require(batches.first?["id"] as? String)
        let behind = checked(try c.json("POST", "/v1/models/\(model)/forget", ["batches": [first]]), "POST", "/v1/models/{id}/forget")
        #expect(behind.status == 202, "\(behind.text)")
        // A dry run writes nothing: it answers at once, on the latest version.
        let preview = checked(try c.json("POST", "/v1/models/\(model)/forget", ["batches": [first], "dry_run": true]), "POST", "/v1/models/{id}/forget")
        #expect(preview.status == 200 && preview.object["model_version"] as? Int == 1, "\(preview.text)")
        // Meanwhile another writer stores version 2 (the weights of version 1 again).
        let network = try ModelFile.decode(Array(try h.store.modelWeights(modelID: model, version: 1, tenantID: tenant)))
        try VersionWriter(store: h.store).commit(VersionCommit(modelID: model, tenantID: tenant, parentVersion: 1, reason: .train,
                                                               network: network, metrics: VersionMetrics()))

        h.service.startWorkers()
        let ok = try h.waitForJob(queued.object["id"] as! String)
        #expect(ok["state"] as? String == "succeeded", "\(ok)")
        let r = ok["result"] as? [String: Any] ?? [:]
        #expect(r["model_version"] as? Int == 3 && r["version_created"] as? Bool == true, "\(ok)")
        let second = try h.waitForJob(behind.object["id"] as! String)
        let r2 = second["result"] as? [String: Any] ?? [:]
        #expect(second["state"] as? String == "succeeded" && r2["model_version"] as? Int == 3 && r2["version_created"] as? Bool == false,
                "\(second)")
        #expect(Set(r2["already_reset"] as? [Int] ?? []).isSubset(of: Set(r["columns_reset"] as? [Int] ?? [])), "\(r2)")
        #expect((r2["already_reset"] as? [Int])?.isEmpty == false, "\(r2)")
        #expect(try h.store.modelVersions(modelID: model, tenantID: tenant).items.count == 4)
        let audits = try c.request("GET", "/v1/models/\(model)/forgets").object["items"] as? [[String: Any]] ?? []
        #expect(audits.count == 1)

        // With nothing queued, a small forget answers at once again.
        let inline = try c.json("POST", "/v1/models/\(model)/forget", ["batches": [first], "dry_run": true])
        #expect(inline.status == 200, "\(inline.text)")
    }
}
