import Foundation
import Testing
@testable import Service
@testable import Storage
import TestSupport

/// NPEFF analyses through the API: both methods on a briefly trained PFC model, components and their details,
/// example grids, perturbations, coefficient fitting, a restart, tenancy, and bad requests that store nothing.
@Suite(.serialized) struct AnalysisTests {
    func get(_ c: TestClient, _ path: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> TestResponse {
        checked(try c.request("GET", path), "GET", path, sourceLocation: sourceLocation)
    }

    func post(_ c: TestClient, _ path: String, _ body: [String: Any], sourceLocation: SourceLocation = #_sourceLocation) throws -> TestResponse {
        checked(try c.json("POST", path, body), "POST", path, sourceLocation: sourceLocation)
    }

    func digitRows(_ n: Int) throws -> (rows: [[Double]], labels: [Int]) {
        let text = try String(contentsOf: ServiceHarness.fixture("digits_train.csv"), encoding: .utf8)
        var rows: [[Double]] = [], labels: [Int] = []
        for line in text.split(separator: "\n").dropFirst().prefix(n) {
            let f = line.split(separator: ",").map { Double($0)! }
            labels.append(Int(f[0]))
            rows.append(Array(f.dropFirst()))
        }
        return (rows, labels)
    }

    /// Rows of analyses and jobs of the tenant.
    func counts(_ h: ServiceHarness, _ tenant: String) throws -> (Int, Int) {
        (try h.store.analyses(tenantID: tenant, page: PageRequest(limit: 1000)).items.count,
         try h.store.jobs(tenantID: tenant, page: PageRequest(limit: 1000)).items.count)
    }

    @Test(arguments: Backend.all)
    func analysesEndToEnd(backend: Backend) throws {
        let location = HarnessLocation(backend)
        defer { location.destroy() }
        var h = try ServiceHarness(location)
        let c = h.client
        let tenant = try #require(try h.store.tenant(forAPIKey: h.key)).id

        // Data: digits with an image shape, the same rows without one, and a dataset of the wrong width.
        let csv = try Data(contentsOf: ServiceHarness.fixture("digits_train.csv"))
        let up = try c.request("POST", "/v1/datasets?name=digits&image_shape=8,8", body: csv, contentType: "text/csv")
        #expect(up.status == 201, "\(up.text)")
        let digits = try #require(up.object["id"] as? String)
        let (rows, labels) = try digitRows(300)
        let plain = try #require(try c.json("POST", "/v1/datasets", ["name": "plain", "features": rows, "labels": labels]).object["id"] as? String)
        let narrow = try #require(try c.json("POST", "/v1/datasets", ["name": "narrow", "features": [[1, 2, 3], [3, 2, 1]], "labels": [0, 1]])
            .object["id"] as? String)

        // A small PFC model, trained briefly through the API.
        let model = try #require(try c.json("POST", "/v1/models", ["name": "npeff", "kind": "pfc", "input_dim": 64, "output_dim": 10,
                                                                    "basis": 20, "iterations": 10, "seed": 1]).object["id"] as? String)
        let train = try c.json("POST", "/v1/models/\(model)/train", ["dataset_id": digits, "epochs": 3, "learning_rate": 0.003])
        #expect(try h.waitForJob(train.object["id"] as! String)["state"] as? String == "succeeded")
        let parameterCount = (64 + 10) * 20

        // Bad requests answer 4xx and store nothing.
        let before = try counts(h, tenant)
        let base: [String: Any] = ["dataset_id": digits, "components": 8, "examples": 100, "steps": 20, "top_k": 64]
        func variant(_ changes: [String: Any]) -> [String: Any] { base.merging(changes) { $1 } }
        let bad: [(String, [String: Any], Int)] = [
            ("/v1/models/nope/analyses", base, 404),
            ("/v1/models/\(model)/analyses", variant(["dataset_id": "nope"]), 404),
            ("/v1/models/\(model)/analyses", variant(["dataset_id": narrow]), 422),
            ("/v1/models/\(model)/analyses", variant(["components": 0]), 422),
            ("/v1/models/\(model)/analyses", variant(["components": -3]), 422),
            ("/v1/models/\(model)/analyses", variant(["top_k": parameterCount + 1]), 422),
            ("/v1/models/\(model)/analyses", variant(["method": "full"]), 422),
            ("/v1/models/\(model)/analyses", variant(["likelihood": "poisson"]), 422),
            ("/v1/models/\(model)/analyses", variant(["steps": 0]), 422),
            ("/v1/models/\(model)/analyses", variant(["version": 99]), 404),
            ("/v1/models/\(model)/analyses", ["components": 8], 422),
        ]
        for (path, body, status) in bad {
            let r = try post(c, path, body)
            #expect(r.status == status, "\(path) \(body): \(r.status) \(r.text)")
        }
        let malformed = try c.request("POST", "/v1/models/\(model)/analyses", body: Data("{".utf8))
        #expect(malformed.status == 400)
        #expect(try counts(h, tenant) == before)

        var analyses: [String: String] = [:]
        for method in ["diagonal", "low_rank"] {
            let created = try post(c, "/v1/models/\(model)/analyses", variant(["method": method, "seed": 3]))
            #expect(created.status == 202, "\(created.text)")
            let id = try #require(created.object["id"] as? String)
            let jobID = try #require(created.object["job_id"] as? String)
            #expect(created.header("Location") == "/v1/analyses/\(id)")
            #expect(created.object["state"] as? String == "pending")
            analyses[method] = id

            let job = try h.waitForJob(jobID)
            #expect(job["state"] as? String == "succeeded", "\(job)")
            #expect(job["kind"] as? String == "analysis")
            let progress = try #require(job["progress"] as? [String: Any])
            #expect(progress["examples_done"] as? Int == 100 && progress["examples"] as? Int == 100, "\(progress)")
            #expect(progress["step"] as? Int == 20, "\(progress)")
            let result = try #require(job["result"] as? [String: Any])
            #expect(result["analysis_id"] as? String == id && result["components"] as? Int == 8)
            checked(try c.request("GET", "/v1/jobs/\(jobID)"), "GET", "/v1/jobs/\(jobID)")

            let analysis = try get(c, "/v1/analyses/\(id)").object
            #expect(analysis["state"] as? String == "ready" && analysis["method"] as? String == method, "\(analysis)")
            #expect(analysis["examples"] as? Int == 100 && analysis["components"] as? Int == 8 && analysis["model_version"] as? Int == 1)
            #expect(analysis["parameter_count"] as? Int == parameterCount)
            #expect((analysis["losses"] as? [Any])?.isEmpty == false && analysis["final_loss"] is Double)

            let list = try get(c, "/v1/analyses/\(id)/components").object
            let items = try #require(list["components"] as? [[String: Any]])
            #expect(items.count == 8 && items.map { $0["index"] as? Int } == Array(0..<8))

            let detail = try get(c, "/v1/analyses/\(id)/components/0").object
            let top = try #require(detail["top_examples"] as? [[String: Any]])
            #expect(top.count == 32)
            let coefficients = top.map { $0["coefficient"] as! Double }
            #expect(coefficients == coefficients.sorted(by: >))
            #expect((detail["label_histogram"] as? [Int])?.reduce(0, +) == 32)
            #expect((detail["top_parameters"] as? [[String: Any]])?.isEmpty == false)
            let parts = try #require(detail["pfc_parts"] as? [String: Any])
            let shares = (parts["shares"] as? [[String: Any]] ?? []).map { $0["share"] as! Double }
            #expect(!shares.isEmpty && shares.reduce(0, +) <= 1.0001 && shares == shares.sorted(by: >))

            // Stored: the pseudo-Fisher over the kept positions and one coefficient per example, as Float32 LE.
            let stored = try h.store.analysisComponent(analysisID: id, index: 3, tenantID: tenant)
            #expect(stored.pseudoFisher.count == 4 * (analysis["kept_parameters"] as! Int))
            #expect(stored.coefficients?.count == 4 * 100)

            let png = try c.request("GET", "/v1/analyses/\(id)/components/1/examples.png")
            #expect(png.status == 200 && png.header("Content-Type") == "image/png")
            #expect(Array(png.body.prefix(8)) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
            checked(png, "GET", "/v1/analyses/\(id)/components/1/examples.png")
            #expect(try get(c, "/v1/analyses/\(id)/components/8").status == 404)
            #expect(try c.request("GET", "/v1/analyses/\(id)/components/x").status == 404)

            let perturbed = try post(c, "/v1/analyses/\(id)/components/0/perturb", ["magnitude": 0.1, "top": 10, "random": 100])
            #expect(perturbed.status == 200, "\(perturbed.text)")
            let kl = try #require(perturbed.object["kl_ratio"] as? Double)
            let norm = try #require(perturbed.object["pef_norm_ratio"] as? Double)
            #expect(kl.isFinite && kl > 0 && norm.isFinite && norm > 0, "\(perturbed.text)")
            #expect([1, -1].contains(perturbed.object["sign"] as? Int) && (perturbed.object["by_sign"] as? [Any])?.count == 2)
            #expect(try post(c, "/v1/analyses/\(id)/components/0/perturb", ["magnitude": -1]).status == 422)
            #expect(try post(c, "/v1/analyses/\(id)/components/0/perturb", ["dataset_id": plain]).status == 422) // not fitted yet
        }

        // Fit the diagonal analysis to another dataset: a job whose result is kept with the analysis.
        let dID = analyses["diagonal"]!
        let fit = try post(c, "/v1/analyses/\(dID)/fit", ["dataset_id": plain, "examples": 60, "steps": 30])
        #expect(fit.status == 202 && fit.header("Location") == "/v1/jobs/\(fit.object["id"] as? String ?? "")", "\(fit.text)")
        let fitJob = try h.waitForJob(fit.object["id"] as! String)
        #expect(fitJob["state"] as? String == "succeeded", "\(fitJob)")
        checked(try c.request("GET", "/v1/jobs/\(fit.object["id"] as! String)"), "GET", "/v1/jobs/\(fit.object["id"] as! String)")
        let fits = try #require(try get(c, "/v1/analyses/\(dID)").object["fits"] as? [[String: Any]])
        #expect(fits.count == 1 && fits[0]["dataset_id"] as? String == plain && fits[0]["examples"] as? Int == 60)
        #expect((fits[0]["components"] as? [[String: Any]])?.count == 8)
        // KL targeting (diagonal only): δ and λ searched so the top examples' mean KL lands in the range; the
        // reported KL is one of the two signs' top KL, and the magnitude is the searched offset's norm.
        let targeted = try post(c, "/v1/analyses/\(dID)/components/1/perturb", ["target_kl": [0.02, 0.2], "top": 10, "random": 60])
        #expect(targeted.status == 200, "\(targeted.text)")
        let reached = try #require(targeted.object["targeted_kl"] as? Double)
        let signKLs = (targeted.object["by_sign"] as? [[String: Any]] ?? []).compactMap { $0["top_kl"] as? Double }
        #expect(signKLs.contains { abs($0 - reached) <= 1e-6 + 1e-3 * reached }, "\(reached) vs \(signKLs)")
        let lam = targeted.object["lambda"] as? Double ?? -1
        #expect(lam > 0 && lam < 1 && (targeted.object["magnitude"] as? Double ?? 0) > 0)
        #expect(try post(c, "/v1/analyses/\(dID)/components/1/perturb", ["target_kl": [0.5, 0.1]]).status == 422)
        let lowRank = try post(c, "/v1/analyses/\(analyses["low_rank"]!)/components/0/perturb", ["target_kl": [0.02, 0.2]])
        #expect(lowRank.status == 422 && lowRank.errorMessage.contains("diagonal"), "\(lowRank.text)")
        let onPlain = try post(c, "/v1/analyses/\(dID)/components/2/perturb", ["dataset_id": plain, "top": 8, "random": 50])
        #expect(onPlain.status == 200 && (onPlain.object["kl_ratio"] as? Double)?.isFinite == true, "\(onPlain.text)")
        #expect(try post(c, "/v1/analyses/\(dID)/fit", ["dataset_id": narrow]).status == 422)
        #expect(try post(c, "/v1/analyses/\(dID)/fit", ["dataset_id": "nope"]).status == 404)
        #expect(try post(c, "/v1/analyses/nope/fit", ["dataset_id": plain]).status == 404)

        // An MLP is fine; its dataset has no image shape, so no example grid.
        let mlp = try #require(try c.json("POST", "/v1/models", ["name": "mlp", "kind": "mlp", "input_dim": 64, "output_dim": 10, "basis": 12])
            .object["id"] as? String)
        let mlpAnalysis = try post(c, "/v1/models/\(mlp)/analyses", ["dataset_id": plain, "method": "low_rank", "components": 4,
                                                                     "examples": 40, "steps": 10, "top_k": 32, "likelihood": "gaussian"])
        #expect(mlpAnalysis.status == 202, "\(mlpAnalysis.text)")
        let mlpID = mlpAnalysis.object["id"] as! String
        #expect(try h.waitForJob(mlpAnalysis.object["job_id"] as! String)["state"] as? String == "succeeded")
        let noGrid = try c.request("GET", "/v1/analyses/\(mlpID)/components/0/examples.png")
        #expect(noGrid.status == 422)
        checked(noGrid, "GET", "/v1/analyses/\(mlpID)/components/0/examples.png")
        let listed = try get(c, "/v1/models/\(model)/analyses").object["items"] as? [[String: Any]]
        #expect(Set(listed?.compactMap { $0["id"] as? String } ?? []) == Set(analyses.values))

        // Another tenant sees none of it.
        let other = try h.otherTenantClient()
        #expect(try other.request("GET", "/v1/analyses/\(dID)").status == 404)
        #expect(try other.request("GET", "/v1/analyses/\(dID)/components").status == 404)
        #expect(try other.request("GET", "/v1/analyses/\(dID)/components/0").status == 404)
        #expect(try other.json("POST", "/v1/analyses/\(dID)/components/0/perturb", [:] as [String: Any]).status == 404)
        #expect(try other.json("POST", "/v1/analyses/\(dID)/fit", ["dataset_id": plain]).status == 404)
        #expect(try other.json("POST", "/v1/models/\(model)/analyses", base).status == 404)

        // Restart: everything is still there and still works.
        let componentsBefore = try c.request("GET", "/v1/analyses/\(analyses["low_rank"]!)/components/5").object
        let analysisBefore = try c.request("GET", "/v1/analyses/\(dID)").object
        h.stop()
        h = try ServiceHarness(location, key: h.key)
        defer { h.stop() }
        let c2 = h.client
        let after = try get(c2, "/v1/analyses/\(dID)").object
        #expect(NSDictionary(dictionary: after) == NSDictionary(dictionary: analysisBefore))
        let componentsAfter = try get(c2, "/v1/analyses/\(analyses["low_rank"]!)/components/5").object
        #expect(NSDictionary(dictionary: componentsAfter) == NSDictionary(dictionary: componentsBefore))
        let again = try post(c2, "/v1/analyses/\(analyses["low_rank"]!)/components/5/perturb", ["top": 10, "random": 100])
        #expect(again.status == 200 && (again.object["kl_ratio"] as? Double)?.isFinite == true, "\(again.text)")
        #expect(try counts(h, tenant).0 == before.0 + 3)
    }
}
