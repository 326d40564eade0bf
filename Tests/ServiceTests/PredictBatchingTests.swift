import Foundation
import Testing
@testable import Service
@testable import Storage
import TestSupport

/// Dynamic batching of predictions (issue 15): requests merged into one FISTA batch are answered
/// exactly as they would be alone (to float rounding), each with its own rows, version, top and
/// every_step; large requests are split; a full queue is 503 with Retry-After. Batches are formed
/// deterministically: the batcher is held while the requests queue (its `stats` show them waiting),
/// then released, so what merges does not depend on timing.
@Suite(.serialized) struct PredictBatchingTests {
    /// The digits test rows (64 features in 0…1, readable as 8 steps of 8 for the recurrent kinds).
    static let rows: [[Double]] = (try? EndToEndTests.testRows().inputs) ?? []

    /// Creates a model of each kind and returns (kind, id); predictions ask for version 0 (the seeded initialization).
    static func models(_ c: TestClient) throws -> [(String, String)] {
        let specs: [[String: Any]] = [
            ["kind": "pfc", "input_dim": 64, "output_dim": 10, "basis": 40, "iterations": 25],
            ["kind": "pfc2", "input_dim": 64, "output_dim": 10, "basis": 30, "iterations": 15],
            ["kind": "mlp", "input_dim": 64, "output_dim": 10, "basis": 300],
            ["kind": "factorized_rnn", "input_dim": 8, "output_dim": 10, "hidden": 24, "iterations": 10, "sequence_length": 8],
            ["kind": "rnn", "input_dim": 8, "output_dim": 10, "hidden": 24, "sequence_length": 8],
        ]
        return try specs.map { spec in
            var body = spec
            body["name"] = spec["kind"]
            let r = try c.json("POST", "/v1/models", body)
            guard r.status == 201, let id = r.object["id"] as? String else { throw TestClientError("create \(spec): \(r.text)") }
            return (spec["kind"] as! String, id)
        }
    }

    /// One prediction request.
    struct Call {
        var model: String
        var body: [String: Any]
        var label: String
    }

    /// Sends every call at once, each from a thread of its own, while the batcher is held; releases
    /// it once all are queued and returns the responses in call order.
    static func sendHeld(_ h: ServiceHarness, _ calls: [Call]) throws -> [TestResponse] {
        let batcher = h.service.predictBatcher
        batcher.hold(true)
        let waitingBefore = batcher.stats.waiting
        let results = ResultBox(count: calls.count)
        var threads: [Thread] = []
        let done = DispatchGroup()
        for (i, call) in calls.enumerated() {
            done.enter()
            threads.append(try Self.post(h, "/v1/models/\(call.model)/predict", call.body, into: results, at: i, group: done))
        }
        let end = Date().addingTimeInterval(120)
        while batcher.stats.waiting < waitingBefore + calls.count && Date() < end { Thread.sleep(forTimeInterval: 0.01) }
        let queued = batcher.stats.waiting
        batcher.hold(false)
        done.wait()
        #expect(queued == waitingBefore + calls.count, "all \(calls.count) requests should have queued while held")
        return try results.values.map { try $0!.get() }
    }

    /// Starts a thread that posts `body` to `path` on a connection (and client) of its own.
    static func post(_ h: ServiceHarness, _ path: String, _ body: [String: Any], into results: ResultBox, at i: Int,
                     group: DispatchGroup) throws -> Thread {
        let port = h.server.port, key = h.key
        let data = try JSONSerialization.data(withJSONObject: body)
        let t = Thread {
            results.set(i, Result { try TestClient(port: port, key: key).request("POST", path, body: data) })
            group.leave()
        }
        t.start()
        return t
    }

    final class ResultBox: @unchecked Sendable {
        private let lock = NSLock()
        private var stored: [Result<TestResponse, any Error>?]
        init(count: Int) { stored = Array(repeating: nil, count: count) }
        func set(_ i: Int, _ r: Result<TestResponse, any Error>) { lock.lock(); stored[i] = r; lock.unlock() }
        var values: [Result<TestResponse, any Error>?] { lock.lock(); defer { lock.unlock() }; return stored }
    }

    static func close(_ a: Double, _ b: Double) -> Bool { abs(a - b) <= 1e-4 + 1e-3 * max(abs(a), abs(b)) }

    /// `batched` answers what `alone` did: status, version, predictions, outputs and explanations
    /// (components exactly, values to rounding) and step predictions.
    static func expectSame(_ batched: TestResponse, _ alone: TestResponse, _ label: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(batched.status == alone.status, "\(label): \(batched.text)", sourceLocation: sourceLocation)
        guard batched.status == 200, alone.status == 200 else {
            #expect(batched.errorMessage == alone.errorMessage, "\(label)", sourceLocation: sourceLocation)
            return
        }
        let b = batched.object, a = alone.object
        #expect(b["model_version"] as? Int == a["model_version"] as? Int, "\(label)", sourceLocation: sourceLocation)
        #expect(b["predictions"] as? [Int] == a["predictions"] as? [Int], "\(label)", sourceLocation: sourceLocation)
        #expect((b["step_predictions"] as? [[Int]]) == (a["step_predictions"] as? [[Int]]), "\(label)", sourceLocation: sourceLocation)
        let bo = b["outputs"] as? [[Double]] ?? [], ao = a["outputs"] as? [[Double]] ?? []
        #expect(bo.count == ao.count && !ao.isEmpty, "\(label)", sourceLocation: sourceLocation)
        for (x, y) in zip(bo, ao) {
            #expect(x.count == y.count && zip(x, y).allSatisfy { close($0, $1) }, "\(label): \(x) vs \(y)", sourceLocation: sourceLocation)
        }
        let be = b["explanations"] as? [[[String: Any]]] ?? [], ae = a["explanations"] as? [[[String: Any]]] ?? []
        #expect(be.count == ae.count, "\(label)", sourceLocation: sourceLocation)
        for (x, y) in zip(be, ae) {
            #expect(x.map { "\($0["block"]!)/\($0["component"]!)" } == y.map { "\($0["block"]!)/\($0["component"]!)" }, "\(label)",
                    sourceLocation: sourceLocation)
            for (p, q) in zip(x, y) {
                #expect(close(p["activation"] as? Double ?? .nan, q["activation"] as? Double ?? .nan), "\(label)", sourceLocation: sourceLocation)
                #expect(close(p["contribution"] as? Double ?? .nan, q["contribution"] as? Double ?? .nan), "\(label)", sourceLocation: sourceLocation)
            }
        }
    }

    @Test(arguments: Backend.all)
    func batchedPredictionsEqualUnbatchedForEveryKind(backend: Backend) throws {
        try ServiceHarness.with(backend, configure: { $0.predictBatchRows = 16; $0.predictBatchDelayMilliseconds = 2 }) { h in
            let c = h.client
            let models = try Self.models(c)
            // A second version of the PFC model, trained briefly: requests for v0, v1 and the latest merge only by version.
            let ds = try c.json("POST", "/v1/datasets", ["name": "d", "features": Array(Self.rows.prefix(40)), "labels": (0..<40).map { $0 % 10 }])
            let pfc = models[0].1
            let job = try c.json("POST", "/v1/models/\(pfc)/train", ["dataset_id": ds.object["id"] as! String, "epochs": 1, "validation_fraction": 0])
            #expect(try h.waitForJob(job.object["id"] as! String)["state"] as? String == "succeeded")

            var calls: [Call] = []
            var offset = 0
            for (kind, id) in models {
                for i in 0..<5 {
                    let n = 1 + (i % 3)
                    let inputs = Array(Self.rows[offset..<(offset + n)])
                    offset += n
                    calls.append(Call(model: id, body: ["inputs": inputs, "top": 3, "version": 0], label: "\(kind) #\(i)"))
                    // Another top in the same moment: its own batch, its own number of explanations.
                    if i == 0 { calls.append(Call(model: id, body: ["inputs": inputs, "top": 5, "version": 0], label: "\(kind) top 5")) }
                    if kind == "factorized_rnn" || kind == "rnn", i < 2 {
                        calls.append(Call(model: id, body: ["inputs": inputs, "top": 3, "version": 0, "every_step": true], label: "\(kind) every_step #\(i)"))
                    }
                }
            }
            for (i, version) in [1, 0, 1].enumerated() {
                calls.append(Call(model: pfc, body: ["inputs": [Self.rows[200 + i]], "top": 3, "version": version], label: "pfc v\(version) #\(i)"))
            }
            calls.append(Call(model: pfc, body: ["inputs": [Self.rows[210]], "top": 3], label: "pfc latest"))

            // Alone: one at a time, each its own batch.
            let before = h.service.predictBatcher.stats
            let alone = try calls.map { try c.json("POST", "/v1/models/\($0.model)/predict", $0.body) }
            let afterAlone = h.service.predictBatcher.stats
            #expect(afterAlone.batches - before.batches == calls.count && afterAlone.largestBatchParts == 1)
            for (r, call) in zip(alone, calls) {
                #expect(r.status == 200, "\(call.label): \(r.text)")
                let n = (call.body["inputs"] as! [[Double]]).count
                #expect((r.object["predictions"] as? [Int])?.count == n)
                let top = call.body["top"] as! Int
                let expl = r.object["explanations"] as? [[Any]] ?? []
                let kind = call.label.split(separator: " ")[0]
                let perExample = kind == "pfc" || kind == "pfc2" ? top : kind == "factorized_rnn" ? 8 * top : 0
                #expect(expl.allSatisfy { $0.count == perExample }, "\(call.label)")
            }
            #expect(alone[alone.count - 1].object["model_version"] as? Int == 1)

            // Together: merged wherever model, version, top and every_step agree.
            let batched = try Self.sendHeld(h, calls)
            let after = h.service.predictBatcher.stats
            #expect(after.largestBatchParts > 1, "the held requests should have merged: \(after)")
            #expect(after.largestBatchRows <= 16)
            #expect(after.batches - afterAlone.batches < calls.count)
            for (i, call) in calls.enumerated() { Self.expectSame(batched[i], alone[i], call.label) }
            _ = checked(batched[0], "POST", "/v1/models/\(calls[0].model)/predict")
        }
    }

    @Test(arguments: Backend.all)
    func largeRequestsAreSplitAndKeepTheirOrder(backend: Backend) throws {
        try ServiceHarness.with(backend, configure: { $0.predictBatchRows = 8; $0.predictBatchDelayMilliseconds = 2 }) { h in
            let c = h.client
            let models = try Self.models(c)
            for (kind, id) in [models[0], models[3]] {
                let a = Array(Self.rows[0..<50]), b = Array(Self.rows[50..<73].reversed())
                // Every row alone (a batch of one row), the reference.
                let single = try (a + b).map { row in try c.json("POST", "/v1/models/\(id)/predict", ["inputs": [row], "version": 0, "top": 2]) }
                let before = h.service.predictBatcher.stats
                let answers = try Self.sendHeld(h, [
                    Call(model: id, body: ["inputs": a, "version": 0, "top": 2], label: "\(kind) 50 rows"),
                    Call(model: id, body: ["inputs": [Self.rows[300]], "version": 0, "top": 2], label: "\(kind) 1 row"),
                    Call(model: id, body: ["inputs": b, "version": 0, "top": 2], label: "\(kind) 23 rows"),
                ])
                let after = h.service.predictBatcher.stats
                // 50 rows are 7 parts of ≤ 8, 23 rows 3, plus the one-row request.
                #expect(after.parts - before.parts == 7 + 3 + 1, "\(after)")
                #expect(after.largestBatchRows == 8)
                #expect(answers.allSatisfy { $0.status == 200 }, "\(answers.map(\.text))")
                for (k, (answer, range)) in [(answers[0], 0..<50), (answers[2], 50..<73)].enumerated() {
                    let outputs = answer.object["outputs"] as? [[Double]] ?? []
                    let predictions = answer.object["predictions"] as? [Int] ?? []
                    #expect(outputs.count == range.count && predictions.count == range.count, "request \(k)")
                    for (j, row) in range.enumerated() where j < outputs.count {
                        let one = single[row].object
                        #expect(predictions[j] == (one["predictions"] as? [Int])?.first, "\(kind) request \(k) row \(j)")
                        let ref = (one["outputs"] as? [[Double]])?.first ?? []
                        #expect(zip(outputs[j], ref).allSatisfy { Self.close($0, $1) }, "\(kind) request \(k) row \(j)")
                    }
                }
            }
        }
    }

    @Test(arguments: Backend.all)
    func aFullQueueIs503WithRetryAfterAndValidationStaysSynchronous(backend: Backend) throws {
        try ServiceHarness.with(backend, configure: { $0.predictQueueLimit = 2; $0.predictBatchDelayMilliseconds = 1 }) { h in
            let c = h.client
            let id = try Self.models(c)[0].1
            let batcher = h.service.predictBatcher
            batcher.hold(true)
            let results = ResultBox(count: 2)
            let group = DispatchGroup()
            for i in 0..<2 {
                group.enter()
                _ = try Self.post(h, "/v1/models/\(id)/predict", ["inputs": [Self.rows[i]], "version": 0], into: results, at: i, group: group)
            }
            let end = Date().addingTimeInterval(60)
            while batcher.stats.waiting < 2 && Date() < end { Thread.sleep(forTimeInterval: 0.01) }
            #expect(batcher.stats.waiting == 2)
            let full = checked(try c.json("POST", "/v1/models/\(id)/predict", ["inputs": [Self.rows[5]], "version": 0]),
                               "POST", "/v1/models/\(id)/predict")
            #expect(full.status == 503 && full.errorCode == "predict_queue_full", "\(full.text)")
            #expect(full.header("Retry-After") == "1")
            #expect(batcher.stats.queueFull == 1)
            // Bad input is still answered at once, before the queue (which is full and held).
            let bad = try c.json("POST", "/v1/models/\(id)/predict", ["inputs": [[1.0, 2.0]], "version": 0])
            #expect(bad.status == 422 && bad.errorMessage.contains("inputs[0] has 2 values"), "\(bad.text)")
            let untrained = try c.json("POST", "/v1/models/\(id)/predict", ["inputs": [Self.rows[5]]])
            #expect(untrained.status == 409, "\(untrained.text)")
            batcher.hold(false)
            group.wait()
            for r in results.values { #expect((try? r?.get())?.status == 200) }
            #expect(try c.json("POST", "/v1/models/\(id)/predict", ["inputs": [Self.rows[5]], "version": 0]).status == 200)
        }
    }

    @Test(arguments: Backend.all)
    func nonFiniteOutputsFailOnlyTheirOwnRequest(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            let c = h.client
            let mlp = try Self.models(c)[2].1
            let huge = [Double](repeating: 3e38, count: 64)
            let hot = Call(model: mlp, body: ["inputs": [Self.rows[0], huge], "version": 0], label: "huge")
            let calm = [Call(model: mlp, body: ["inputs": [Self.rows[1]], "version": 0], label: "calm 1"),
                        Call(model: mlp, body: ["inputs": [Self.rows[2], Self.rows[3]], "version": 0], label: "calm 2")]
            let alone = try ([hot] + calm).map { try c.json("POST", "/v1/models/\($0.model)/predict", $0.body) }
            // Alone, the huge row overflows the MLP (its hidden pre-activations reach ±inf).
            #expect(alone[0].status == 422 && alone[0].errorMessage.contains("inputs[1] are not finite"), "\(alone[0].text)")
            let batched = try Self.sendHeld(h, [calm[0], hot, calm[1]])
            #expect(h.service.predictBatcher.stats.largestBatchParts == 3)
            Self.expectSame(batched[1], alone[0], "huge")
            Self.expectSame(batched[0], alone[1], "calm 1")
            Self.expectSame(batched[2], alone[2], "calm 2")
        }
    }

    @Test(arguments: Backend.all)
    func aPredictionPastItsDeadlineIs503AndBatchingCanBeOff(backend: Backend) throws {
        try ServiceHarness.with(backend, configure: { $0.predictTimeoutSeconds = 0.2; $0.predictBatchDelayMilliseconds = 0 }) { h in
            let c = h.client
            let id = try Self.models(c)[0].1
            let batcher = h.service.predictBatcher
            batcher.hold(true)
            let results = ResultBox(count: 1)
            let group = DispatchGroup()
            group.enter()
            _ = try Self.post(h, "/v1/models/\(id)/predict", ["inputs": [Self.rows[0]], "version": 0], into: results, at: 0, group: group)
            while batcher.stats.waiting < 1 { Thread.sleep(forTimeInterval: 0.01) }
            Thread.sleep(forTimeInterval: 0.4)  // past the 0.2 s deadline while queued
            batcher.hold(false)
            group.wait()
            let late = try results.values[0]!.get()
            #expect(late.status == 503 && late.errorCode == "cancelled", "\(late.text)")
            // Batching off: held requests still run one by one, each alone.
            let before = batcher.stats
            let answers = try Self.sendHeld(h, (0..<3).map { Call(model: id, body: ["inputs": [Self.rows[$0]], "version": 0], label: "\($0)") })
            #expect(answers.allSatisfy { $0.status == 200 })
            #expect(batcher.stats.batches - before.batches == 3 && batcher.stats.largestBatchParts == 1)
        }
    }

    @Test(arguments: Backend.all)
    func aLoneClientsRequestsRunAtOnceWithoutWaitingTheDelay(backend: Backend) throws {
        // The longest delay the server accepts: a lone request must still not wait for company.
        try ServiceHarness.with(backend, configure: { $0.predictBatchDelayMilliseconds = 1000 }) { h in
            let c = h.client
            let id = try Self.models(c)[0].1
            let batcher = h.service.predictBatcher
            let before = batcher.stats
            for i in 0..<8 {
                let r = try c.json("POST", "/v1/models/\(id)/predict", ["inputs": [Self.rows[i]], "version": 0, "top": 2])
                #expect(r.status == 200 && r.object["model_version"] as? Int == 0, "\(r.text)")
                #expect((r.object["predictions"] as? [Int])?.count == 1)
            }
            let after = batcher.stats
            #expect(after.batches - before.batches == 8 && after.parts - before.parts == 8, "\(after)")
            #expect(after.waitedForCompany == before.waitedForCompany, "a lone client's batches ran at once: \(after)")
            #expect(after.largestBatchParts == 1 && after.running == 0 && after.forming == 0)

            // While another batch computes, a batch waits for company (here: two held requests, then
            // released together; whether the delay is over by then does not change what merges).
            batcher.simulateBusy(true)
            let results = ResultBox(count: 2)
            let group = DispatchGroup()
            batcher.hold(true)
            for (i, inputs) in [[Self.rows[20]], [Self.rows[21], Self.rows[22]]].enumerated() {
                group.enter()
                _ = try Self.post(h, "/v1/models/\(id)/predict", ["inputs": inputs, "version": 0, "top": 2], into: results, at: i, group: group)
            }
            let end = Date().addingTimeInterval(60)
            while batcher.stats.waiting < 2 && Date() < end { Thread.sleep(forTimeInterval: 0.002) }
            batcher.hold(false)
            while batcher.stats.forming == 0 && batcher.stats.parts - after.parts < 2 && Date() < end { Thread.sleep(forTimeInterval: 0.002) }
            batcher.simulateBusy(false)
            group.wait()
            let merged = batcher.stats
            #expect(merged.batches - after.batches == 1 && merged.largestBatchParts == 2 && merged.largestBatchRows == 3, "\(merged)")
            #expect(merged.waitedForCompany - after.waitedForCompany == 1)
            let answers = try results.values.map { try $0!.get() }
            let alone = try [[Self.rows[20]], [Self.rows[21], Self.rows[22]]].map {
                try c.json("POST", "/v1/models/\(id)/predict", ["inputs": $0, "version": 0, "top": 2])
            }
            Self.expectSame(answers[0], alone[0], "first")
            Self.expectSame(answers[1], alone[1], "joined")
        }
    }
}
