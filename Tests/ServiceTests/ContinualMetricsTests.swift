import Foundation
import Testing
import TestSupport
@testable import Service
@testable import Storage

/// Continual-learning metrics (issue 17): after each task the job evaluates the model on every
/// task's evaluation set and keeps row i of R on the task's version; `GET …/tasks/metrics` returns
/// R with average accuracy, backward transfer and forgetting. Real sockets, both stores.
@Suite(.serialized) struct ContinualMetricsTests {
    func digits(_ file: String, _ classes: Set<Int>) throws -> (rows: [[Double]], labels: [Int]) {
        let text = try String(contentsOf: ServiceHarness.fixture(file), encoding: .utf8)
        var rows: [[Double]] = [], labels: [Int] = []
        for line in text.split(separator: "\n") {
            let f = line.split(separator: ",").compactMap { Double($0) }
            guard f.count == 65, classes.contains(Int(f[0])) else { continue }
            labels.append(Int(f[0]))
            rows.append(Array(f.dropFirst()))
        }
        return (rows, labels)
    }

    func upload(_ c: TestClient, _ name: String, _ data: (rows: [[Double]], labels: [Int])) throws -> String {
        let r = checked(try c.json("POST", "/v1/datasets", ["name": name, "features": data.rows, "labels": data.labels]), "POST", "/v1/datasets")
        #expect(r.status == 201, "\(r.text)")
        return r.object["id"] as! String
    }

    /// Three class-incremental splits of the digits, (0, 1), (2, 3), (4, 5): training and evaluation sets.
    func uploadSplits(_ c: TestClient) throws -> (train: [String], eval: [String]) {
        var train: [String] = [], eval: [String] = []
        for (i, classes) in [[0, 1], [2, 3], [4, 5]].map(Set.init).enumerated() {
            train.append(try upload(c, "train \(i + 1)", try digits("digits_train.csv", classes)))
            eval.append(try upload(c, "eval \(i + 1)", try digits("digits_test.csv", classes)))
        }
        return (train, eval)
    }

    @Test(arguments: Backend.all)
    func accuracyMatrixBackwardTransferAndForgetting(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            let c = h.client
            let (train, eval) = try uploadSplits(c)
            let model = checked(try c.json("POST", "/v1/models", ["name": "cl", "kind": "pfc", "input_dim": 64, "output_dim": 10, "basis": 40,
                                                                  "iterations": 15, "loss": "images_labels_mse"]), "POST", "/v1/models").object["id"] as! String
            // No tasks yet: 404.
            #expect(checked(try c.request("GET", "/v1/models/\(model)/tasks/metrics"), "GET", "/v1/models/{id}/tasks/metrics").status == 404)

            let base: [String: Any] = ["epochs": 2, "batch_size": 50, "window": 6, "slide": 0.5, "deterministic": true,
                                       "validation_fraction": 0, "early_stopping": NSNull(), "learning_rate": 0.003]
            func task(_ i: Int, _ extra: [String: Any]) throws -> TestResponse {
                var body = base
                body["name"] = "task \(i + 1)"; body["dataset_id"] = train[i]
                for (k, v) in extra { body[k] = v }
                return checked(try c.json("POST", "/v1/models/\(model)/tasks", body), "POST", "/v1/models/{id}/tasks")
            }
            var jobs: [String] = []
            // Task 1 and 2 name their own evaluation sets; the model keeps them for later rows.
            for i in 0..<2 {
                let r = try task(i, ["evaluation_dataset_id": eval[i]])
                #expect(r.status == 202, "\(r.text)")
                let done = try h.waitForJob(r.object["id"] as! String)
                #expect(done["state"] as? String == "succeeded", "\(done)")
                jobs.append(r.object["id"] as! String)
            }

            // Bad input: nothing queued.
            let narrow = try upload(c, "narrow", ([[0.1, 0.2], [0.2, 0.1]], [0, 1]))
            let other = try h.otherTenantClient()
            let theirs = try other.json("POST", "/v1/datasets", ["name": "x", "features": [Array(repeating: 0.5, count: 64)], "labels": [1]]).object["id"] as! String
            let refused: [([String: Any], Int, String)] = [
                (["evaluate_on": [eval[0], eval[1]]], 422, "3 datasets"),
                (["evaluate_on": [eval[0], eval[1], eval[2], eval[2]]], 422, "3 datasets"),
                (["evaluate_on": [eval[0], "nope", eval[2]]], 404, "nope"),
                (["evaluate_on": [eval[0], theirs, eval[2]]], 404, "dataset"),
                (["evaluation_dataset_id": narrow], 422, "2 features"),
                (["evaluation_dataset_id": "nope"], 404, "nope"),
                (["evaluate_on": "x"], 422, "evaluate_on"),
            ]
            for (extra, status, mention) in refused {
                let r = try task(2, extra)
                #expect(r.status == status && r.errorMessage.contains(mention), "\(extra): \(r.status) \(r.text)")
            }
            let queued = try c.request("GET", "/v1/jobs?model_id=\(model)").object["items"] as? [[String: Any]] ?? []
            #expect(queued.count == 2, "refused tasks queue nothing: \(queued.count)")

            // Task 3 names every task's evaluation set itself.
            let r3 = try task(2, ["evaluate_on": eval])
            #expect(r3.status == 202, "\(r3.text)")
            #expect(try h.waitForJob(r3.object["id"] as! String)["state"] as? String == "succeeded")
            jobs.append(r3.object["id"] as! String)

            let m = checked(try c.request("GET", "/v1/models/\(model)/tasks/metrics"), "GET", "/v1/models/{id}/tasks/metrics")
            #expect(m.status == 200, "\(m.text)")
            #expect(Set(m.object.keys) == ["accuracy_matrix", "average_accuracy", "backward_transfer", "forgetting", "tasks"])
            let tasks = m.object["tasks"] as? [[String: Any]] ?? []
            #expect(tasks.map { $0["task"] as? Int } == [1, 2, 3])
            #expect(tasks.map { $0["evaluation_dataset_id"] as? String } == eval)
            let versions = tasks.compactMap { $0["model_version"] as? Int }
            #expect(versions == [1, 2, 3])
            let rows = m.object["accuracy_matrix"] as? [[Any]] ?? []
            #expect(rows.count == 3 && rows.allSatisfy { $0.count == 3 }, "\(rows)")
            var r = [[Double]](repeating: [Double](repeating: .nan, count: 3), count: 3)
            for i in 0..<3 {
                for j in 0..<3 {
                    if j > i { #expect(rows[i][j] is NSNull, "R[\(i)][\(j)] is after task \(i + 1)"); continue }
                    guard let a = rows[i][j] as? Double else { Issue.record("R[\(i)][\(j)] missing: \(rows)"); continue }
                    r[i][j] = a
                    // R[i][j] is the evaluate route's accuracy of version v_i on task j's set.
                    let e = checked(try c.json("POST", "/v1/models/\(model)/evaluate", ["dataset_id": eval[j], "version": versions[i]]),
                                    "POST", "/v1/models/{id}/evaluate")
                    #expect(e.status == 200 && e.object["accuracy"] as? Double == a, "R[\(i)][\(j)] = \(a) vs \(e.text.prefix(200))")
                }
            }
            // The row's evaluations are kept on each task's version, made by its job.
            for (i, v) in versions.enumerated() {
                let list = try c.request("GET", "/v1/models/\(model)/versions/\(v)/evaluations").object["items"] as? [[String: Any]] ?? []
                let byJob = list.filter { $0["job_id"] as? String == jobs[i] }
                #expect(byJob.compactMap { $0["dataset_id"] as? String } == Array(eval.prefix(i + 1)), "version \(v): \(list.count)")
            }
            // The figures, by hand from the stored R (T = 3).
            let average = (r[2][0] + r[2][1] + r[2][2]) / 3
            let bwt = ((r[2][0] - r[0][0]) + (r[2][1] - r[1][1])) / 2
            let forgetting = [max(r[0][0], r[1][0]) - r[2][0], r[1][1] - r[2][1]]
            #expect(abs((m.object["average_accuracy"] as? Double ?? -9) - average) < 1e-12)
            #expect(abs((m.object["backward_transfer"] as? Double ?? -9) - bwt) < 1e-12)
            let f = m.object["forgetting"] as? [Any] ?? []
            #expect(f.count == 3 && f[2] is NSNull, "\(f)")
            for j in 0..<2 { #expect(abs((f[j] as? Double ?? -9) - forgetting[j]) < 1e-12, "forgetting[\(j)]: \(f)") }
            // Learning task 1 well is visible on its own set (classes 0 and 1 of the test split).
            #expect(r[0][0] > 0.5, "R[0][0] = \(r[0][0])")

            // Another tenant, an unknown model and a model without tasks: 404.
            #expect(checked(try other.request("GET", "/v1/models/\(model)/tasks/metrics"), "GET", "/v1/models/{id}/tasks/metrics").status == 404)
            #expect(try c.request("GET", "/v1/models/nope/tasks/metrics").status == 404)
        }
    }

    /// Without any evaluation set a task stores no row; R is then all null and so are the figures.
    @Test(arguments: Backend.all)
    func tasksWithoutEvaluationSetsHaveNullFigures(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            let c = h.client
            let d = try upload(c, "t", try digits("digits_train.csv", [0, 1]))
            let model = try c.json("POST", "/v1/models", ["name": "cl", "kind": "pfc", "input_dim": 64, "output_dim": 10, "basis": 20, "iterations": 8]).object["id"] as! String
            let r = try c.json("POST", "/v1/models/\(model)/tasks", ["name": "one", "dataset_id": d, "epochs": 1, "window": 4, "slide": 0.1, "validation_fraction": 0])
            #expect(r.status == 202, "\(r.text)")
            #expect(try h.waitForJob(r.object["id"] as! String)["state"] as? String == "succeeded")
            let m = checked(try c.request("GET", "/v1/models/\(model)/tasks/metrics"), "GET", "/v1/models/{id}/tasks/metrics")
            #expect(m.status == 200)
            #expect((m.object["accuracy_matrix"] as? [[Any]])?.first?.first is NSNull, "\(m.text)")
            #expect(m.object["average_accuracy"] is NSNull && m.object["backward_transfer"] is NSNull, "\(m.text)")
            #expect((m.object["forgetting"] as? [Any])?.count == 1 && (m.object["tasks"] as? [[String: Any]])?.first?["evaluation_dataset_id"] is NSNull)
            let version = try c.request("GET", "/v1/models/\(model)/versions/1").object
            #expect((version["evaluations"] as? [Any])?.isEmpty == true)
        }
    }
}

extension ContinualMetricsTests {
    /// Tasks with `evaluate_on` queued at once, before any has run: each counts the task jobs queued
    /// before it as tasks so far, so all are accepted and R gets one row per task. A task behind one
    /// that was cancelled no longer has the count it was queued with: it fails before it trains.
    @Test(arguments: Backend.all)
    func tasksWithEvaluationSetsQueueAtOnce(backend: Backend) throws {
        let location = HarnessLocation(backend)
        defer { location.destroy() }
        let h = try ServiceHarness(location, startWorkers: false)
        defer { h.stop() }
        let c = h.client
        let (train, eval) = try uploadSplits(c)
        let model = try c.json("POST", "/v1/models", ["name": "cl", "kind": "pfc", "input_dim": 64, "output_dim": 10, "basis": 30,
                                                      "iterations": 8]).object["id"] as! String
        func task(_ i: Int, evaluateOn: [String]) throws -> TestResponse {
            checked(try c.json("POST", "/v1/models/\(model)/tasks", ["name": "task \(i + 1)", "dataset_id": train[i % 3], "epochs": 1,
                                                                    "batch_size": 50, "window": 4, "slide": 0.5, "validation_fraction": 0,
                                                                    "evaluate_on": evaluateOn]), "POST", "/v1/models/{id}/tasks")
        }
        var jobs: [String] = []
        for i in 0..<3 {
            let r = try task(i, evaluateOn: Array(eval.prefix(i + 1)))
            #expect(r.status == 202, "task \(i + 1): \(r.text)")
            jobs.append(r.object["id"] as? String ?? "")
        }
        let short = try task(3, evaluateOn: eval)
        #expect(short.status == 422 && short.errorMessage.contains("4 datasets") && short.errorMessage.contains("3 task jobs"), "\(short.text)")
        h.service.startWorkers()
        for id in jobs { #expect(try h.waitForJob(id)["state"] as? String == "succeeded") }
        let m = checked(try c.request("GET", "/v1/models/\(model)/tasks/metrics"), "GET", "/v1/models/{id}/tasks/metrics")
        let rows = m.object["accuracy_matrix"] as? [[Any]] ?? []
        #expect(rows.count == 3, "\(m.text)")
        for (i, row) in rows.enumerated() {
            #expect(row.prefix(i + 1).allSatisfy { $0 is Double } && row.dropFirst(i + 1).allSatisfy { $0 is NSNull }, "row \(i + 1): \(row)")
        }

        h.service.stopWorkers(deadline: .seconds(5))
        let fourth = try task(3, evaluateOn: eval + [eval[0]])
        let fifth = try task(4, evaluateOn: eval + [eval[0], eval[1]])
        #expect(fourth.status == 202 && fifth.status == 202, "\(fourth.text) \(fifth.text)")
        #expect(try c.request("DELETE", "/v1/jobs/\(fourth.object["id"] as? String ?? "")").status == 200)
        h.service.startWorkers()
        let failed = try h.waitForJob(fifth.object["id"] as? String ?? "")
        #expect(failed["state"] as? String == "failed" && "\(failed["error"] ?? "")".contains("this job is task 4"), "\(failed)")
        #expect(failed["progress"] == nil || failed["progress"] is NSNull, "it failed before training: \(failed)")
        #expect(try h.store.latestModelVersion(modelID: model, tenantID: try h.tenantID()).version == 3)
    }
}

extension ContinualMetricsTests {
    /// Verified forgetting (issue 17): a model that memorised random labels tells its training rows
    /// from held-out rows of the same distribution (membership-inference AUC ≈ 1); after forgetting
    /// the task that trained them it cannot (≈ 0.5). Recorded in the answer and the audit.
    @Test(arguments: Backend.all)
    func forgetIsVerifiedByMembershipInference(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            let c = h.client
            let (rows, _) = try digits("digits_train.csv", Set(0..<10))
            // Random labels from a fixed LCG: nothing to learn but the rows themselves.
            var state: UInt64 = 0x5eed
            func label() -> Int { state = state &* 6364136223846793005 &+ 1442695040888963407; return Int((state >> 33) % 10) }
            let members = (Array(rows[0..<100]), (0..<100).map { _ in label() })
            let held = (Array(rows[100..<200]), (0..<100).map { _ in label() })
            let train = try upload(c, "random labels", members)
            let reference = try upload(c, "held out", held)
            let model = try c.json("POST", "/v1/models", ["name": "memo", "kind": "pfc", "input_dim": 64, "output_dim": 10, "basis": 120, "iterations": 10]).object["id"] as! String
            let t = checked(try c.json("POST", "/v1/models/\(model)/tasks", ["name": "memorise", "dataset_id": train, "epochs": 60, "batch_size": 20, "window": 120,
                                                                           "slide": 0, "deterministic": true, "validation_fraction": 0, "early_stopping": NSNull(),
                                                                           "learning_rate": 0.01]), "POST", "/v1/models/{id}/tasks")
            #expect(t.status == 202, "\(t.text)")
            #expect(try h.waitForJob(t.object["id"] as! String)["state"] as? String == "succeeded")

            // Bad references: nothing written.
            let narrow = try upload(c, "narrow", ([[0.1, 0.2]], [0]))
            for (ref, status) in [("nope", 404), (narrow, 422)] {
                let r = checked(try c.json("POST", "/v1/models/\(model)/forget", ["task": 1, "reference_dataset_id": ref]), "POST", "/v1/models/{id}/forget")
                #expect(r.status == status, "\(ref): \(r.text)")
            }
            #expect(try h.store.modelVersions(modelID: model, tenantID: try h.tenantID()).items.count == 2)

            let f = checked(try c.json("POST", "/v1/models/\(model)/forget", ["task": 1, "reference_dataset_id": reference]), "POST", "/v1/models/{id}/forget")
            #expect(f.status == 200 && f.object["version_created"] as? Bool == true, "\(f.text)")
            let v = f.object["verification"] as? [String: Any] ?? [:]
            #expect(v["forgotten_examples"] as? Int == 100 && v["reference_examples"] as? Int == 100 && v["rest_examples"] as? Int == 0, "\(v)")
            let before = v["before"] as? [String: Any] ?? [:], after = v["after"] as? [String: Any] ?? [:]
            let aucBefore = before["mia_auc"] as? Double ?? -1, aucAfter = after["mia_auc"] as? Double ?? -1
            print("forget verification (\(backend)): mia_auc before \(aucBefore), after \(aucAfter); forgotten accuracy "
                + "\(before["forgotten_accuracy"] ?? "nil") → \(after["forgotten_accuracy"] ?? "nil"), reference \(before["reference_accuracy"] ?? "nil")")
            #expect(aucBefore > 0.9, "memorised: \(before)")
            #expect(abs(aucAfter - 0.5) < 0.1, "forgotten: \(after)")
            #expect((before["forgotten_accuracy"] as? Double ?? 0) > (before["reference_accuracy"] as? Double ?? 1), "\(before)")
            #expect(before["rest_accuracy"] is NSNull)
            // Kept in the audit record.
            let audits = checked(try c.request("GET", "/v1/models/\(model)/forgets"), "GET", "/v1/models/{id}/forgets").object["items"] as? [[String: Any]] ?? []
            let stored = audits.last?["verification"] as? [String: Any] ?? [:]
            #expect((stored["before"] as? [String: Any])?["mia_auc"] as? Double == aucBefore, "\(audits)")
            #expect((stored["after"] as? [String: Any])?["mia_auc"] as? Double == aucAfter)
        }
    }

    /// The AUC itself on hand-made scores: ranks with ties, perfect and inverted separations.
    @Test func membershipAUCByHand() {
        #expect(MembershipInference.auc(members: [0.1, 0.2], nonMembers: [0.3, 0.4]) == 1)
        #expect(MembershipInference.auc(members: [0.3, 0.4], nonMembers: [0.1, 0.2]) == 0)
        #expect(MembershipInference.auc(members: [0.5, 0.5], nonMembers: [0.5]) == 0.5)
        // Pairs (m, n): (0.1, 0.2) win, (0.1, 0.1) tie, (0.3, 0.2) lose, (0.3, 0.1) lose → (1 + 0.5) / 4.
        #expect(MembershipInference.auc(members: [0.1, 0.3], nonMembers: [0.2, 0.1]) == 0.375)
        #expect(MembershipInference.auc(members: [], nonMembers: [1]) == nil)
    }
}
