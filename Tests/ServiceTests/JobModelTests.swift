// The typed job model over real stores: a worker that dies mid-job leaves a checkpoint another
// replica resumes from, ending with weights bit-identical to an uninterrupted run; a claimed job of
// an unknown kind fails clearly; the version writer commits all or nothing.
import Foundation
import Logging
import Synchronization
import Testing
import TestSupport
@testable import PFC
@testable import Service
@testable import Storage

@Suite(.serialized) struct JobModelTests {
    /// The digits fixture (first `limit` rows) as an upload body.
    func digits(limit: Int) throws -> [String: Any] {
        let text = try String(contentsOf: ServiceHarness.fixture("digits_train.csv"), encoding: .utf8)
        var rows: [[Double]] = [], labels: [Int] = []
        for line in text.split(separator: "\n").dropFirst().prefix(limit) {
            let f = line.split(separator: ",").map { Double($0)! }
            labels.append(Int(f[0]))
            rows.append(Array(f.dropFirst()))
        }
        return ["name": "digits", "features": rows, "labels": labels]
    }

    func newModel(_ c: TestClient) throws -> String {
        try c.json("POST", "/v1/models", ["name": "m", "kind": "pfc", "input_dim": 64, "output_dim": 10, "basis": 30,
                                          "iterations": 10, "loss": "images_labels_mse", "seed": 5]).object["id"] as! String
    }

    /// Runs `body` with a job submitted to a fresh model; returns the model and job ids.
    func submit(_ c: TestClient, kind: String, dataset: String) throws -> (model: String, job: String) {
        let model = try newModel(c)
        let body: [String: Any] = kind == "task"
            ? ["name": "t", "dataset_id": dataset, "epochs": 4, "batch_size": 40, "window": 6, "slide": 0.25, "deterministic": true,
               "validation_fraction": 0.2, "early_stopping": NSNull(), "learning_rate": 0.003, "seed": 2, "grow": true]
            : ["dataset_id": dataset, "epochs": 4, "batch_size": 40, "learning_rate": 0.003, "validation_fraction": 0.2, "seed": 2]
        let r = try c.json("POST", kind == "task" ? "/v1/models/\(model)/tasks" : "/v1/models/\(model)/train", body)
        #expect(r.status == 202, "\(r.text)")
        return (model, r.object["id"] as! String)
    }

    func latestWeights(_ store: any Store, model: String, tenant: String) throws -> (version: Int, bytes: Data) {
        let v = try store.latestModelVersion(modelID: model, tenantID: tenant)
        return (v.version, try store.modelWeights(modelID: model, version: v.version, tenantID: tenant))
    }

    @Test(arguments: Backend.all)
    func aJobResumedOnAnotherReplicaEndsBitIdentical(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            let c = h.client, tenant = try h.tenantID()
            let dataset = try c.json("POST", "/v1/datasets", try digits(limit: 600)).object["id"] as! String
            for kind in ["task", "train"] {
                // Uninterrupted.
                let (m1, j1) = try submit(c, kind: kind, dataset: dataset)
                let done1 = try h.waitForJob(j1)
                #expect(done1["state"] as? String == "succeeded", "\(done1)")

                // The same job on a twin model; its worker dies right after the checkpoint of epoch 2.
                let died = Atomic<Bool>(false)
                h.service.workers.onCheckpoint { _, epoch, batch in
                    guard epoch == 3 && batch == 0 else { return false }
                    died.store(true, ordering: .relaxed)
                    return true
                }
                let (m2, j2) = try submit(c, kind: kind, dataset: dataset)
                let end = Date().addingTimeInterval(120)
                while !died.load(ordering: .relaxed) && Date() < end { Thread.sleep(forTimeInterval: 0.05) }
                let didDie = died.load(ordering: .relaxed)
                #expect(didDie)
                h.service.stopWorkers(deadline: .seconds(5))
                h.service.workers.onCheckpoint(nil)
                let left = try h.store.job(id: j2, tenantID: tenant)
                #expect(left.state == .running && left.attempts == 1)
                #expect(try h.store.checkpoint(jobID: j2)?.epoch == 3)

                // Another replica reclaims it once the lease expires and resumes from the checkpoint.
                var config = ServiceConfiguration()
                config.dataDirectory = h.location.dataDirectory
                config.instanceID = "replica-b"
                config.pollSeconds = 0.1
                config.heartbeatSeconds = 0.2
                config.leaseSeconds = 3
                var logger = Logger(label: "replica-b")
                logger.logLevel = .warning
                let b = PFCService(store: h.store, configuration: config, logger: logger)
                b.startWorkers()
                let done2 = try h.waitForJob(j2)
                b.stopWorkers(deadline: .seconds(5))
                h.service.startWorkers()
                #expect(done2["state"] as? String == "succeeded", "\(done2)")
                #expect(done2["attempts"] as? Int == 2)
                let progress = try #require(done2["progress"] as? [String: Any])
                #expect((progress["resumed_from"] as? [String: Int]) == ["epoch": 3, "batch": 0], "\(progress)")
                _ = checked(try c.request("GET", "/v1/jobs/\(j2)"), "GET", "/v1/jobs/\(j2)")

                // Bit-identical weights, one new version, the same ledger, no checkpoint left.
                let w1 = try latestWeights(h.store, model: m1, tenant: tenant), w2 = try latestWeights(h.store, model: m2, tenant: tenant)
                #expect(w1.version == 1 && w2.version == 1)
                #expect(w1.bytes == w2.bytes, "\(kind): the resumed run's weights differ from the uninterrupted run's")
                let l1 = try h.store.ledgerEntries(modelID: m1, tenantID: tenant), l2 = try h.store.ledgerEntries(modelID: m2, tenantID: tenant)
                #expect(l1.map { [$0.epoch, $0.batchIndex] } == l2.map { [$0.epoch, $0.batchIndex] })
                #expect(l1.map(\.windows) == l2.map(\.windows) && l1.map(\.examples) == l2.map(\.examples))
                #expect(kind == "train" ? l1.isEmpty : l1.count == 4 * 12)
                let c1 = try h.store.components(modelID: m1, version: 1, tenantID: tenant)
                let c2 = try h.store.components(modelID: m2, version: 1, tenantID: tenant)
                #expect(c1.count == 30 && c1.map(\.norms) == c2.map(\.norms))
                #expect(try h.store.checkpointCount() == 0)
            }
        }
    }

    /// A job's lease lasts while its worker runs it, also through stretches with no heartbeat of
    /// progress (here a whole epoch, longer than the lease; in service, loading a large dataset). Two
    /// workers share the queue: if the lease lapsed, the second would reclaim the job and run it again.
    @Test(arguments: Backend.all)
    func theLeaseHoldsThroughWorkWithoutProgress(backend: Backend) throws {
        let location = HarnessLocation(backend)
        defer { location.destroy() }
        let h = try ServiceHarness(location, workers: 2, configure: {
            $0.leaseSeconds = 0.6
            $0.heartbeatSeconds = 600  // progress only at the epoch's first and last batch
        })
        defer { h.stop() }
        let c = h.client
        let dataset = try c.json("POST", "/v1/datasets", try digits(limit: 600)).object["id"] as! String
        let model = try c.json("POST", "/v1/models", ["name": "slow", "kind": "pfc", "input_dim": 64, "output_dim": 10, "basis": 200,
                                                      "iterations": 200, "loss": "images_labels_mse", "seed": 5]).object["id"] as! String
        let start = Date()
        let r = try c.json("POST", "/v1/models/\(model)/train", ["dataset_id": dataset, "epochs": 1, "batch_size": 10,
                                                                 "learning_rate": 0.001, "validation_fraction": 0.2, "seed": 2])
        #expect(r.status == 202, "\(r.text)")
        let done = try h.waitForJob(r.object["id"] as! String)
        let took = Date().timeIntervalSince(start)
        #expect(took > 5 * 0.6, "the epoch (\(took) s) must outlast the lease several times for this test to mean anything")
        #expect(done["state"] as? String == "succeeded", "\(done)")
        #expect(done["attempts"] as? Int == 1, "the job was reclaimed while it ran: \(done)")
    }

    @Test(arguments: Backend.all)
    func aCancelledJobLeavesNoCheckpoint(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            let c = h.client, tenant = try h.tenantID()
            let dataset = try c.json("POST", "/v1/datasets", try digits(limit: 300)).object["id"] as! String
            let saved = Atomic<Bool>(false)
            let store = h.store
            h.service.workers.onCheckpoint { job, _, _ in
                if !saved.exchange(true, ordering: .relaxed) {
                    #expect((try? store.checkpoint(jobID: job)) != nil)
                    _ = try? store.cancelJob(id: job, tenantID: tenant)
                }
                return false
            }
            let (_, j) = try submit(c, kind: "train", dataset: dataset)
            let done = try h.waitForJob(j)
            h.service.workers.onCheckpoint(nil)
            let didSave = saved.load(ordering: .relaxed)
            #expect(didSave && done["state"] as? String == "cancelled", "\(done)")
            #expect(try h.store.checkpointCount() == 0)
        }
    }

    /// A job of a kind this server does not run waits for a replica that runs it (a rolling upgrade)
    /// without holding back the jobs behind it, and fails clearly once its grace has passed.
    @Test(arguments: Backend.all)
    func aJobOfUnknownKindWaitsItsGraceWithoutBlockingOthers(backend: Backend) throws {
        try ServiceHarness.with(backend, configure: { $0.unknownKindGraceSeconds = 600 }) { h in
            let tenant = try h.tenantID()
            let future = Job(tenantID: tenant, kind: "defragment", params: try JSONColumn(["x": 1]))
            try h.store.enqueue(future)
            let ds = try h.client.json("POST", "/v1/datasets", try digits(limit: 50)).object["id"] as! String
            let model = try newModel(h.client)
            let r = try h.client.json("POST", "/v1/models/\(model)/train", ["dataset_id": ds, "epochs": 1, "validation_fraction": 0])
            #expect(try h.waitForJob(r.object["id"] as? String ?? "", timeout: 120)["state"] as? String == "succeeded")
            let waiting = try h.store.job(id: future.id, tenantID: tenant)
            #expect(waiting.state == .queued && waiting.attempts == 0, "left for a replica that runs it: \(waiting.state)")
        }
    }

    @Test(arguments: Backend.all)
    func aClaimedJobOfUnknownKindFailsClearly(backend: Backend) throws {
        try ServiceHarness.with(backend, configure: { $0.unknownKindGraceSeconds = 0 }) { h in
            let tenant = try h.tenantID()
            let job = Job(tenantID: tenant, kind: "defragment", params: try JSONColumn(["x": 1]))
            try h.store.enqueue(job)
            let done = try h.waitForJob(job.id, timeout: 60)
            #expect(done["state"] as? String == "failed")
            #expect(done["error"] as? String == "unknown job kind \"defragment\": this server runs train, task, analysis, evaluate, forget jobs", "\(done)")
            #expect(done["kind"] as? String == "defragment" && done["attempts"] as? Int == 1)
            // Parameters that are not the kind's fail clearly too, and nothing is trained.
            let bad = Job(tenantID: tenant, kind: "train", params: try JSONColumn(["epochs": "many"]))
            try h.store.enqueue(bad)
            let failed = try h.waitForJob(bad.id, timeout: 60)
            #expect(failed["state"] as? String == "failed")
            #expect((failed["error"] as? String ?? "").hasPrefix("the parameters of this train job are unreadable"), "\(failed)")
            // A train job queued by a server from before the typed job model stored its request: validated once, run.
            let ds = try h.client.json("POST", "/v1/datasets", try digits(limit: 100)).object["id"] as! String
            let model = try newModel(h.client)
            let legacy = Job(tenantID: tenant, kind: "train", params: try JSONColumn(["dataset_id": JSONValue.string(ds), "epochs": .number(1)]),
                             datasetID: ds, modelID: model)
            try h.store.enqueue(legacy)
            let ran = try h.waitForJob(legacy.id, timeout: 120)
            #expect(ran["state"] as? String == "succeeded", "\(ran)")
            let invalid = Job(tenantID: tenant, kind: "train", params: try JSONColumn(["dataset_id": JSONValue.string(ds), "epochs": .number(0)]),
                              datasetID: ds, modelID: model)
            try h.store.enqueue(invalid)
            let refused = try h.waitForJob(invalid.id, timeout: 60)
            #expect(refused["error"] as? String == "the parameters of this train job are invalid: epochs must be in 1…1000", "\(refused)")
        }
    }

    @Test(arguments: Backend.all)
    func theVersionWriterCommitsAllOrNothing(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            let c = h.client, tenant = try h.tenantID()
            let model = try newModel(c)
            let network = try ModelFile.decode(Array(try h.store.modelWeights(modelID: model, version: 0, tenantID: tenant)))
            var metrics = VersionMetrics()
            metrics.task = 1
            var commit = VersionCommit(
                modelID: model, tenantID: tenant, parentVersion: 0, reason: .task, network: network, metrics: metrics,
                ledger: [LedgerBatch(task: 1, epoch: 1, batchIndex: 0, rows: [0, 1, 2], windows: [0..<6], datasetID: nil)],
                components: .measured(meanActivations: [[Float](repeating: 0.5, count: 30)], trained: Set(0..<6), reset: [],
                                      provenance: ComponentProvenance(jobID: "j", datasetID: nil, task: 1)),
                job: ("no-such-job", "w"))
            // The last step (completing a job this worker does not hold) fails: nothing of the version stays.
            #expect(throws: StoreError.self) { try VersionWriter(store: h.store).commit(commit) }
            #expect(try h.store.latestModelVersion(modelID: model, tenantID: tenant).version == 0)
            #expect(try h.store.ledgerEntries(modelID: model, tenantID: tenant).isEmpty)
            #expect(try h.store.components(modelID: model, version: 1, tenantID: tenant).isEmpty)
            // Without the job, the same commit records everything at once.
            commit.job = nil
            let v = try VersionWriter(store: h.store).commit(commit)
            #expect(v.version == 1 && VersionMetrics(column: v.metrics).task == 1)
            let ledger = try h.store.ledgerEntries(modelID: model, tenantID: tenant)
            #expect(ledger.count == 1 && ledger[0].windows == [ColumnRange(0..<6)] && ledger[0].version == 1)
            let comps = try h.store.components(modelID: model, version: 1, tenantID: tenant)
            #expect(comps.count == 30)
            #expect(try comps[0].provenance.decode(ComponentProvenance.self).task == 1)
            #expect(try comps[29].provenance.decode(ComponentProvenance.self) == ComponentProvenance(jobID: "j", datasetID: nil, task: nil))
            #expect(try comps[0].norms.decode(ComponentNorms.self).meanActivation == 0.5)
        }
    }
}
