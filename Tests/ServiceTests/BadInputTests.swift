import Foundation
import Testing
@testable import Service
@testable import Storage
import TestSupport

/// Bad input gets a 4xx JSON error that names the problem, and nothing is half-written.
@Suite(.serialized) struct BadInputTests {
    struct Counts: Equatable { var datasets: Int; var models: Int; var jobs: Int; var versions: Int }

    func counts(_ h: ServiceHarness, tenant: String) throws -> Counts {
        let datasets = try h.store.datasets(tenantID: tenant, page: PageRequest(limit: 1000)).items.count
        let models = try h.store.models(tenantID: tenant, page: PageRequest(limit: 1000)).items
        let jobs = try h.store.jobs(tenantID: tenant, page: PageRequest(limit: 1000)).items.count
        let versions = try models.reduce(0) { $0 + (try h.store.modelVersions(modelID: $1.id, tenantID: tenant, page: PageRequest(limit: 1000)).items.count) }
        return Counts(datasets: datasets, models: models.count, jobs: jobs, versions: versions)
    }

    @Test(arguments: Backend.all)
    func badRequestsAreRejectedCleanly(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            let c = h.client
            let tenant = try h.tenantID()
            let v = try OpenAPIValidator()

            // A valid dataset and model to aim bad requests at.
            let ds = try c.json("POST", "/v1/datasets", ["name": "ok", "features": [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]], "labels": [0, 1, 1]])
            #expect(ds.status == 201, "\(ds.text)")
            let datasetID = ds.object["id"] as! String
            let signed = try c.json("POST", "/v1/datasets", ["name": "neg", "features": [[0.1, -0.2], [0.3, 0.4]], "labels": [0, 1]])
            let signedID = signed.object["id"] as! String
            let model = try c.json("POST", "/v1/models", ["name": "m", "kind": "pfc", "input_dim": 2, "output_dim": 2, "basis": 4, "iterations": 3])
            let modelID = model.object["id"] as! String
            let before = try counts(h, tenant: tenant)

            struct Case { var name: String; var method: String; var path: String; var body: Data?; var type: String?; var status: Int; var mentions: String }
            func json(_ o: Any) -> Data { try! JSONSerialization.data(withJSONObject: o) }
            let cases: [Case] = [
                Case(name: "malformed JSON", method: "POST", path: "/v1/models", body: Data("{\"name\": ".utf8), type: "application/json", status: 400, mentions: "JSON"),
                Case(name: "wrong content type", method: "POST", path: "/v1/models", body: Data("name=x".utf8), type: "application/x-www-form-urlencoded", status: 415, mentions: "application/json"),
                Case(name: "dataset content type", method: "POST", path: "/v1/datasets", body: Data("x".utf8), type: "text/plain", status: 415, mentions: "text/csv"),
                Case(name: "missing field", method: "POST", path: "/v1/models", body: json(["name": "m", "kind": "pfc", "output_dim": 2]), type: "application/json", status: 422, mentions: "input_dim"),
                Case(name: "wrong type", method: "POST", path: "/v1/models", body: json(["name": "m", "kind": "pfc", "input_dim": "two", "output_dim": 2]), type: "application/json", status: 422, mentions: "input_dim"),
                Case(name: "unknown kind", method: "POST", path: "/v1/models", body: json(["name": "m", "kind": "transformer", "input_dim": 2, "output_dim": 2]), type: "application/json", status: 422, mentions: "kind"),
                Case(name: "basis over the limit", method: "POST", path: "/v1/models", body: json(["name": "m", "kind": "pfc", "input_dim": 2, "output_dim": 2, "basis": 999_999]), type: "application/json", status: 422, mentions: "basis"),
                Case(name: "ragged rows", method: "POST", path: "/v1/datasets", body: json(["name": "r", "features": [[0.1, 0.2], [0.3]], "labels": [0, 1]]), type: "application/json", status: 422, mentions: "row 2"),
                Case(name: "non-integer label", method: "POST", path: "/v1/datasets", body: json(["name": "r", "features": [[0.1], [0.3]], "labels": [0, 1.5]]), type: "application/json", status: 422, mentions: "label"),
                Case(name: "CSV NaN", method: "POST", path: "/v1/datasets?name=c", body: Data("0,0.1,0.2\n1,nan,0.3\n".utf8), type: "text/csv", status: 422, mentions: "line 2, column 2"),
                Case(name: "CSV ragged", method: "POST", path: "/v1/datasets?name=c", body: Data("0,0.1,0.2\n1,0.3\n".utf8), type: "text/csv", status: 422, mentions: "line 2"),
                Case(name: "CSV without name", method: "POST", path: "/v1/datasets", body: Data("0,0.1\n".utf8), type: "text/csv", status: 422, mentions: "name"),
                Case(name: "NDJSON bad line", method: "POST", path: "/v1/datasets?name=n", body: Data("{\"features\":[0.1],\"label\":0}\n{\"features\":[0.2]}\n".utf8), type: "application/x-ndjson", status: 422, mentions: "line 2"),
                Case(name: "nested steps past the sequence limit", method: "POST", path: "/v1/datasets", body: json(["name": "s", "features": [Array(repeating: [0.5], count: 10_001)], "labels": [0]]), type: "application/json", status: 422, mentions: "at most 10000 steps"),
                Case(name: "image shape mismatch", method: "POST", path: "/v1/datasets", body: json(["name": "r", "features": [[0.1, 0.2]], "labels": [0], "image_shape": [3, 3]]), type: "application/json", status: 422, mentions: "image_shape"),
                Case(name: "unknown model", method: "GET", path: "/v1/models/nope", body: nil, type: nil, status: 404, mentions: "nope"),
                Case(name: "unknown dataset for training", method: "POST", path: "/v1/models/\(modelID)/train", body: json(["dataset_id": "nope"]), type: "application/json", status: 404, mentions: "nope"),
                Case(name: "negative features for a PFC model", method: "POST", path: "/v1/models/\(modelID)/train", body: json(["dataset_id": signedID]), type: "application/json", status: 422, mentions: "negative"),
                Case(name: "bad epochs", method: "POST", path: "/v1/models/\(modelID)/train", body: json(["dataset_id": datasetID, "epochs": 0]), type: "application/json", status: 422, mentions: "epochs"),
                Case(name: "predict wrong width", method: "POST", path: "/v1/models/\(modelID)/predict", body: json(["inputs": [[0.1, 0.2, 0.3]]]), type: "application/json", status: 422, mentions: "input_dim"),
                Case(name: "predict negative input", method: "POST", path: "/v1/models/\(modelID)/predict", body: json(["inputs": [[0.1, -0.2]]]), type: "application/json", status: 422, mentions: "negative"),
                Case(name: "predict unknown version", method: "POST", path: "/v1/models/\(modelID)/predict", body: json(["inputs": [[0.1, 0.2]], "version": 7]), type: "application/json", status: 404, mentions: "7"),
                Case(name: "task with an absurd slide (found by schemathesis: it crashed the server)", method: "POST", path: "/v1/models/\(modelID)/tasks", body: json(["name": "t", "dataset_id": datasetID, "slide": 7.6e307]), type: "application/json", status: 422, mentions: "slide"),
            Case(name: "bad limit", method: "GET", path: "/v1/models?limit=0", body: nil, type: nil, status: 400, mentions: "limit"),
                Case(name: "oversize body", method: "POST", path: "/v1/models", body: Data(repeating: 32, count: 20 << 20), type: "application/json", status: 413, mentions: ""),
            ]
            for k in cases {
                let r = try c.request(k.method, k.path, body: k.body, contentType: k.type)
                #expect(r.status == k.status, "\(k.name): \(r.status) \(r.text)")
                #expect(r.errorCode != nil, "\(k.name): no JSON error body: \(r.text)")
                #expect(k.mentions.isEmpty || r.errorMessage.contains(k.mentions), "\(k.name): message '\(r.errorMessage)' does not mention \(k.mentions)")
                let problems = v.problems(method: k.method, path: String(k.path.split(separator: "?")[0]), status: r.status,
                                          contentType: r.header("Content-Type"), body: r.body)
                #expect(problems.isEmpty, "\(k.name): \(problems)")
            }
            #expect(try counts(h, tenant: tenant) == before, "a rejected request changed the database")

            // Auth: no key, a wrong key, and another tenant's resources.
            #expect(try c.request("GET", "/v1/models", auth: false).status == 401)
            let wrong = TestClient(port: h.server.port, key: "pfc_" + String(repeating: "0", count: 64))
            let unauthorized = try wrong.request("GET", "/v1/datasets")
            #expect(unauthorized.status == 401 && unauthorized.header("WWW-Authenticate") == "Bearer" && unauthorized.errorCode == "unauthorized")
            let other = try h.otherTenantClient()
            #expect(try other.request("GET", "/v1/models/\(modelID)").status == 404)
            #expect(try other.request("GET", "/v1/datasets/\(datasetID)").status == 404)
            #expect(try other.request("DELETE", "/v1/models/\(modelID)").status == 404)
            #expect(try other.json("POST", "/v1/models/\(modelID)/predict", ["inputs": [[0.1, 0.2]]]).status == 404)
            #expect((try other.request("GET", "/v1/models").object["items"] as? [Any])?.isEmpty == true)
            #expect(try counts(h, tenant: tenant) == before)
            #expect(try c.request("GET", "/healthz", auth: false).status == 200)
        }
    }

    @Test(arguments: Backend.all)
    func datasetInUseCannotBeDeletedAndCancelWorks(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            let c = h.client
            var rows: [[Double]] = [], labels: [Int] = []
            for i in 0..<400 { rows.append((0..<16).map { Double(($0 * 7 + i) % 10) / 10 }); labels.append(i % 3) }
            let ds = try c.json("POST", "/v1/datasets", ["name": "d", "features": rows, "labels": labels])
            let datasetID = ds.object["id"] as! String
            let model = try c.json("POST", "/v1/models", ["name": "m", "kind": "pfc", "input_dim": 16, "output_dim": 3, "basis": 64, "iterations": 50])
            let modelID = model.object["id"] as! String
            let job = try c.json("POST", "/v1/models/\(modelID)/train", ["dataset_id": datasetID, "epochs": 1000, "batch_size": 10, "early_stopping": NSNull()])
            let jobID = job.object["id"] as! String
            // Wait until it runs, then the dataset and model are in use.
            let end = Date().addingTimeInterval(60)
            while Date() < end, try c.request("GET", "/v1/jobs/\(jobID)").object["state"] as? String != "running" { Thread.sleep(forTimeInterval: 0.05) }
            let refused = try c.request("DELETE", "/v1/datasets/\(datasetID)")
            #expect(refused.status == 409 && refused.errorMessage.contains("job"))
            #expect(try c.request("DELETE", "/v1/models/\(modelID)").status == 409)
            let cancel = try c.request("DELETE", "/v1/jobs/\(jobID)")
            #expect(cancel.status == 200 && cancel.object["cancel_requested"] as? Bool == true)
            let final = try h.waitForJob(jobID, timeout: 60)
            #expect(final["state"] as? String == "cancelled")
            // A cancelled job wrote no version; now the dataset can go.
            #expect((try c.request("GET", "/v1/models/\(modelID)/versions").object["items"] as? [Any])?.count == 1)
            #expect(try c.request("DELETE", "/v1/datasets/\(datasetID)").status == 204)
            #expect(try c.request("GET", "/v1/datasets/\(datasetID)").status == 404)
        }
    }

    @Test(arguments: Backend.all)
    func jobOfADeadWorkerIsReclaimedAndAppliedOnce(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            let c = h.client
            let ds = try c.json("POST", "/v1/datasets", ["name": "d", "features": [[0.1, 0.9], [0.8, 0.2], [0.2, 0.7], [0.9, 0.1]], "labels": [0, 1, 0, 1]])
            let model = try c.json("POST", "/v1/models", ["name": "m", "kind": "pfc", "input_dim": 2, "output_dim": 2, "basis": 4, "iterations": 5])
            let modelID = model.object["id"] as! String
            let tenant = try h.tenantID()
            // Stop this process's workers, then play a worker that claims the job and dies (no heartbeats).
            h.service.stopWorkers(deadline: .seconds(5))
            let queued = try c.json("POST", "/v1/models/\(modelID)/train", ["dataset_id": ds.object["id"] as! String, "epochs": 2, "validation_fraction": 0])
            let jobID = queued.object["id"] as! String
            let claimed = try h.store.claimJob(owner: "dead-worker", leaseDuration: 0.5, kinds: ["train"])
            #expect(claimed?.id == jobID)
            // A live worker reclaims it once the lease expires, and runs it exactly once.
            h.service.startWorkers()
            let done = try h.waitForJob(jobID, timeout: 60)
            #expect(done["state"] as? String == "succeeded", "\(done)")
            #expect(done["attempts"] as? Int == 2, "claimed by the dead worker, then run by the live one")
            let versions = try h.store.modelVersions(modelID: modelID, tenantID: tenant).items
            #expect(versions.map(\.version) == [0, 1])
            // The dead worker waking up cannot complete it a second time.
            #expect(throws: StoreError.self) { try h.store.completeJob(id: jobID, owner: "dead-worker", result: .emptyObject) }
        }
    }
}
