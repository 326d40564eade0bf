import Foundation
import HTTP
import Testing
@testable import Service
@testable import Storage
#if canImport(Glibc)
import Glibc
import TestSupport
#endif

/// The security review's findings (issue 12): input any tenant can send that used to abort the
/// process, or hold the server, or store something wrong. Each case runs over a real socket and
/// checks the server still answers afterwards.
@Suite(.serialized) struct HardeningTests {
    func json(_ o: Any) -> Data { try! JSONSerialization.data(withJSONObject: o) }

    /// The server is still up and serving authenticated requests.
    func alive(_ h: ServiceHarness, _ comment: Comment? = nil) throws {
        #expect(try h.client.request("GET", "/healthz", auth: false).status == 200, comment)
        #expect(try h.client.request("GET", "/v1/models").status == 200, comment)
    }

    @Test(arguments: Backend.all)
    func numbersThatUsedToTrapAreRefused(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            let c = h.client
            // Finding 1: a CSV label ≥ 2⁶³ trapped converting to Int. Finding 10: CSV took labels up to 2⁶³.
            for label in ["1e19", "99999999999", "1000000000", "-0.5"] {
                let r = try c.request("POST", "/v1/datasets?name=x", body: Data("\(label),1\n0,2\n".utf8), contentType: "text/csv")
                #expect(r.status == 422 && r.errorMessage.contains("label"), "\(label): \(r.text)")
            }
            let fits = try c.request("POST", "/v1/datasets?name=x", body: Data("999999999,1\n0,2\n".utf8), contentType: "text/csv")
            #expect(fits.status == 201, "\(fits.text)")
            // Finding 2: an image_shape whose product overflows, in the JSON field and the query parameter.
            let big = try c.json("POST", "/v1/datasets", ["name": "j", "features": [[0, 1, 0, 1]], "labels": [1],
                                                          "image_shape": [3037000500, 3037000500]])
            #expect(big.status == 422 && big.errorMessage.contains("image_shape"), "\(big.text)")
            let q = try c.request("POST", "/v1/datasets?name=x&image_shape=3037000500,3037000500",
                                  body: Data("0,1,0,1,0\n1,0,1,0,1\n".utf8), contentType: "text/csv")
            #expect(q.status == 422 && q.errorMessage.contains("image_shape"), "\(q.text)")
            let huge = try c.request("POST", "/v1/datasets?name=x&image_shape=99999999999999999999,1",
                                     body: Data("0,1\n".utf8), contentType: "text/csv")
            #expect(huge.status == 422, "\(huge.text)")
            // Finding 3: ?shape= on a component PNG (a plain GET).
            let model = try c.json("POST", "/v1/models", ["name": "m", "kind": "pfc", "input_dim": 4, "output_dim": 2, "basis": 3, "iterations": 3])
            let modelID = model.object["id"] as! String
            for shape in ["4294967296,4294967296", "3037000500,3037000500", "-2,-2", "2,2,2", "a,b"] {
                let r = try c.request("GET", "/v1/models/\(modelID)/components/0/0.png?shape=\(shape)")
                #expect(r.status == 422 && r.errorMessage.contains("shape"), "\(shape): \(r.text)")
            }
            let png = try c.request("GET", "/v1/models/\(modelID)/components/0/0.png?shape=2,2")
            #expect(png.status == 200 && png.header("Content-Type") == "image/png")
            #expect(try c.request("GET", "/v1/models/\(modelID)/components?version=abc").status == 400)
            try alive(h)
        }
    }

    @Test(arguments: Backend.all)
    func growthIsHeldToTheCreationLimits(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            let c = h.client
            let ds = try c.json("POST", "/v1/datasets", ["name": "six", "features": (0..<6).map { i in [Double(i % 2), 0.5, 0.25, 1] },
                                                         "labels": (0..<6).map { $0 % 2 }])
            let datasetID = ds.object["id"] as! String
            let model = try c.json("POST", "/v1/models", ["name": "m", "kind": "pfc", "input_dim": 4, "output_dim": 2, "basis": 8, "iterations": 3])
            let modelID = model.object["id"] as! String
            // Finding 4: 10 epochs × 6 batches × slide 5000 asked for K ≈ 300 000 (a 250 GB allocation).
            let task: [String: Any] = ["name": "t", "dataset_id": datasetID, "epochs": 10, "batch_size": 1, "window": 5000,
                                       "slide": 5000, "grow": true]
            let r = try c.json("POST", "/v1/models/\(modelID)/tasks", task)
            #expect(r.status == 422 && r.errorMessage.contains("max_basis"), "\(r.text)")
            #expect(try h.store.jobs(tenantID: try h.tenantID(), page: PageRequest(limit: 10)).items.isEmpty)
            // The streamed route grows the same way, after its examples arrived: refused, nothing stored.
            let lines = (0..<6).map { #"{"features":[\#($0 % 2),0.5,0.25,1],"label":\#($0 % 2)}"# }.joined(separator: "\n")
            let s = try c.request("POST", "/v1/models/\(modelID)/tasks/stream?name=s&batch_size=1&window=5000&slide=5000&grow=true",
                                  body: Data(lines.utf8), contentType: "application/x-ndjson")
            #expect(s.status == 422 && s.errorMessage.contains("max_basis"), "\(s.text)")
            // A queued job that would grow past the limits (the limits changed, or it was queued by an
            // older version) fails with a clear error instead of aborting every worker that claims it.
            let tenant = try h.tenantID()
            let params = try JSONDecoder().decode(TaskRequest.self, from: json(["name": "t", "dataset_id": datasetID, "epochs": 10,
                                                                                "batch_size": 1, "window": 5000, "slide": 5000, "grow": true]))
            let job = try Job(tenantID: tenant, modelID: modelID, params: .task(try params.jobParams(limits: ServiceLimits(), start: 0)))
            try h.store.enqueue(job)
            h.service.workers.wake()
            let done = try h.waitForJob(job.id, timeout: 60)
            #expect(done["state"] as? String == "failed", "\(done)")
            #expect((done["error"] as? String ?? "").contains("max_basis"), "\(done)")
            #expect(try h.store.modelVersions(modelID: modelID, tenantID: tenant).items.count == 1)
            try alive(h)
        }
    }

    @Test(arguments: Backend.all)
    func divergedTrainingWritesNoVersionAndPredictAnswersFinite(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            let c = h.client
            let ds = try c.json("POST", "/v1/datasets", ["name": "d", "features": [[0.1, 0.9], [0.8, 0.2], [0.2, 0.7], [0.9, 0.1]], "labels": [0, 1, 0, 1]])
            let datasetID = ds.object["id"] as! String
            let model = try c.json("POST", "/v1/models", ["name": "m", "kind": "pfc", "input_dim": 2, "output_dim": 2, "basis": 4, "iterations": 5])
            let modelID = model.object["id"] as! String
            // Finding 8: learning_rate 1e30 "succeeded" with weights that made every later call a 500.
            let lr = try c.json("POST", "/v1/models/\(modelID)/train", ["dataset_id": datasetID, "learning_rate": 1e30])
            #expect(lr.status == 422 && lr.errorMessage.contains("learning_rate"), "\(lr.text)")
            // Finite features near Float's limit overflow the loss: the job fails, no version is written.
            let hot = try c.json("POST", "/v1/datasets", ["name": "hot", "features": [[3e38, 3e38], [3e38, 1], [1, 3e38], [2e38, 2e38]], "labels": [0, 1, 0, 1]])
            let job = try c.json("POST", "/v1/models/\(modelID)/train", ["dataset_id": hot.object["id"] as! String, "epochs": 2,
                                                                         "validation_fraction": 0, "batch_size": 2])
            #expect(job.status == 202, "\(job.text)")
            let done = try h.waitForJob(job.object["id"] as! String, timeout: 60)
            #expect(done["state"] as? String == "failed", "\(done)")
            #expect((done["error"] as? String ?? "").contains("diverged"), "\(done)")
            #expect((try c.request("GET", "/v1/models/\(modelID)/versions").object["items"] as? [Any])?.count == 1)
            // Huge finite inputs to predict: finite numbers or a 422 naming the input, never a 500.
            let p = try c.json("POST", "/v1/models/\(modelID)/predict", ["inputs": [[3e38, 3e38], [0.5, 0.5]], "version": 0])
            #expect(p.status == 422 || p.status == 200, "\(p.text)")
            if p.status == 422 { #expect(p.errorMessage.contains("inputs[0]"), "\(p.text)") }
            let ok = try c.json("POST", "/v1/models/\(modelID)/predict", ["inputs": [[0.5, 0.5]], "version": 0])
            #expect(ok.status == 200, "\(ok.text)")
            let components = try c.request("GET", "/v1/models/\(modelID)/components")
            #expect(components.status == 200, "\(components.text)")
            try alive(h)
        }
    }

    @Test(arguments: Backend.all)
    func ledgerAndTaskListsArePaged(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            let c = h.client
            let rows = (0..<40).map { i in [Double(i % 2), 0.5, Double(i % 3) / 2, 1] }
            let ds = try c.json("POST", "/v1/datasets", ["name": "d", "features": rows, "labels": (0..<40).map { $0 % 2 }, "image_shape": [2, 2]])
            let datasetID = ds.object["id"] as! String
            let model = try c.json("POST", "/v1/models", ["name": "m", "kind": "pfc", "input_dim": 4, "output_dim": 2, "basis": 20, "iterations": 3])
            let modelID = model.object["id"] as! String
            for name in ["a", "b"] {
                let t = try c.json("POST", "/v1/models/\(modelID)/tasks", ["name": name, "dataset_id": datasetID, "epochs": 1, "batch_size": 10,
                                                                          "window": 4, "slide": 0.5, "validation_fraction": 0, "grow": true])
                #expect(t.status == 202, "\(t.text)")
                #expect(try h.waitForJob(t.object["id"] as! String)["state"] as? String == "succeeded")
            }
            // Finding 9: limit and offset were ignored (limit=1 returned every row).
            let all = try c.request("GET", "/v1/models/\(modelID)/ledger?limit=1000").object["items"] as! [[String: Any]]
            #expect(all.count == 8)
            let one = try c.request("GET", "/v1/models/\(modelID)/ledger?limit=1")
            #expect((one.object["items"] as? [Any])?.count == 1)
            #expect(one.object["next_offset"] as? Int == 1)
            let second = try c.request("GET", "/v1/models/\(modelID)/ledger?limit=3&offset=3").object["items"] as! [[String: Any]]
            #expect(second.map { $0["id"] as! String } == all[3..<6].map { $0["id"] as! String })
            for bad in ["abc", "-1", "0", "1001"] {
                #expect(try c.request("GET", "/v1/models/\(modelID)/ledger?limit=\(bad)").status == 400, "limit=\(bad)")
                #expect(try c.request("GET", "/v1/models/\(modelID)/tasks?limit=\(bad)").status == 400, "limit=\(bad)")
            }
            let tasks = try c.request("GET", "/v1/models/\(modelID)/tasks?limit=1")
            #expect((tasks.object["items"] as? [[String: Any]])?.first?["name"] as? String == "a")
            #expect(tasks.object["next_offset"] as? Int == 1)
            let rest = try c.request("GET", "/v1/models/\(modelID)/tasks?offset=1").object["items"] as! [[String: Any]]
            #expect(rest.map { $0["name"] as? String } == ["b"])
            // Finding 14: a forget version kept no image_shape, so its component PNG answered 422.
            let forget = try c.json("POST", "/v1/models/\(modelID)/forget", ["task": 1])
            #expect(forget.status == 200 && forget.object["version_created"] as? Bool == true, "\(forget.text)")
            let png = try c.request("GET", "/v1/models/\(modelID)/components/0/0.png")
            #expect(png.status == 200, "\(png.text)")
        }
    }

    @Test(arguments: Backend.all)
    func strictJSON(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            let c = h.client
            let ds = try c.json("POST", "/v1/datasets", ["name": "d", "features": [[0.1, 0.9], [0.8, 0.2]], "labels": [0, 1]])
            let datasetID = ds.object["id"] as! String
            let model = try c.json("POST", "/v1/models", ["name": "m", "kind": "pfc", "input_dim": 2, "output_dim": 2, "basis": 4, "iterations": 5])
            let modelID = model.object["id"] as! String
            let train = "/v1/models/\(modelID)/train"
            // Finding 11: a repeated key was first-wins.
            let dup = try c.request("POST", train, body: Data(#"{"dataset_id":"\#(datasetID)","dataset_id":"x"}"#.utf8))
            #expect(dup.status == 400 && dup.errorMessage.contains("dataset_id"), "\(dup.text)")
            let nested = try c.request("POST", "/v1/models/\(modelID)/forget", body: Data(#"{"examples":[{"dataset_id":"a","rows":[1],"rows":[2]}]}"#.utf8))
            #expect(nested.status == 400 && nested.errorMessage.contains("examples[0].rows"), "\(nested.text)")
            // Invalid UTF-8 in a field the route ignores.
            var bad = Data(#"{"dataset_id":"\#(datasetID)","note":""#.utf8)
            bad.append(0xFF); bad.append(contentsOf: Array(#""}"#.utf8))
            let utf8 = try c.request("POST", train, body: bad)
            #expect(utf8.status == 400 && utf8.errorMessage.contains("UTF-8"), "\(utf8.text)")
            // A number that does not fit its field is 422 naming the field, not 400 "malformed JSON".
            for (field, value) in [("epochs", "1e308"), ("epochs", "1.5"), ("batch_size", "99999999999999999999"), ("learning_rate", "1e39"), ("seed", "-1")] {
                let r = try c.request("POST", train, body: Data(#"{"dataset_id":"\#(datasetID)","\#(field)":\#(value)}"#.utf8))
                #expect(r.status == 422 && r.errorMessage.contains(field), "\(field)=\(value): \(r.text)")
            }
            let deep = try c.request("POST", "/v1/models/\(modelID)/forget", body: Data(#"{"examples":[{"dataset_id":"a","rows":[1, 2.5]}]}"#.utf8))
            #expect(deep.status == 422 && deep.errorMessage.contains("examples[0].rows[1]"), "\(deep.text)")
            // Truly malformed JSON is still 400.
            #expect(try c.request("POST", train, body: Data(#"{"dataset_id": "#.utf8)).status == 400)
            // A valid body with odd spacing and escapes still works.
            let fine = try c.request("POST", train, body: Data(#" { "dataset_id" : "\#(datasetID)", "epochs" : 1 , "valid\u0061tion_fraction": 0 } "#.utf8))
            #expect(fine.status == 202, "\(fine.text)")
            try alive(h)
        }
    }

    /// Finding 14: `early_stopping: null` must reach the worker as "off" (the task's params dropped
    /// the key, so the worker decoded the default patience 5). The job stores the validated
    /// `TrainingOptions`; what the worker decodes from the stored column must be the same value.
    @Test func earlyStoppingNullSurvivesTheJobParams() throws {
        let limits = ServiceLimits()
        let task = try JSONDecoder().decode(TaskRequest.self, from: Data(#"{"name":"t","dataset_id":"d","early_stopping":null}"#.utf8))
        #expect(task.earlyStopping == nil)
        let taskParams = try task.jobParams(limits: limits, start: 0)
        let storedTask = try JSONColumn(taskParams).decode(TaskJobParams.self)
        #expect(storedTask == taskParams && storedTask.options.earlyStoppingPatience == nil)

        let train = try JSONDecoder().decode(TrainRequest.self, from: Data(#"{"dataset_id":"d","early_stopping":null}"#.utf8))
        let trainParams = try train.jobParams(limits: limits)
        let storedTrain = try JSONColumn(trainParams).decode(TrainJobParams.self)
        #expect(storedTrain == trainParams && storedTrain.options.earlyStoppingPatience == nil)

        let defaulted = try JSONColumn(try JSONDecoder().decode(TaskRequest.self, from: Data(#"{"name":"t","dataset_id":"d"}"#.utf8))
            .jobParams(limits: limits, start: 0)).decode(TaskJobParams.self)
        #expect(defaulted.options.earlyStoppingPatience == 5)
    }

    /// Opens a raw connection that sends `head` and returns the fd and the response status.
    func openStream(_ h: ServiceHarness, _ path: String) throws -> (Int32, Int) {
        let fd = try h.client.connect()
        let head = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\nAuthorization: Bearer \(h.key)\r\n\r\n"
        try h.client.sendAll(fd, Array(head.utf8))
        var reader = SocketReader(fd: fd)
        return (fd, try reader.readHead().0)
    }

    @Test(arguments: Backend.all)
    func eventStreamsAreCappedPerTenantAndInAll(backend: Backend) throws {
        // Small caps (the defaults are 256 / 1024 since streams hold no thread): the checks are the same.
        try ServiceHarness.with(backend, configure: { $0.limits.maxEventStreamsPerTenant = 4; $0.limits.maxEventStreams = 8 }) { h in
            let c = h.client
            let ds = try c.json("POST", "/v1/datasets", ["name": "d", "features": [[0.1, 0.9], [0.8, 0.2]], "labels": [0, 1]])
            let model = try c.json("POST", "/v1/models", ["name": "m", "kind": "pfc", "input_dim": 2, "output_dim": 2, "basis": 4, "iterations": 5])
            let modelID = model.object["id"] as! String
            // A job that stays queued keeps its event streams open.
            h.service.stopWorkers(deadline: .seconds(5))
            let job = try c.json("POST", "/v1/models/\(modelID)/train", ["dataset_id": ds.object["id"] as! String])
            let jobID = job.object["id"] as! String
            let limits = h.service.configuration.limits
            var fds: [Int32] = []
            defer { fds.forEach { close($0) } }
            // Finding 5: 16 streams (the handler-thread count) timed out every other request.
            for _ in 0..<limits.maxEventStreamsPerTenant {
                let (fd, status) = try openStream(h, "/v1/jobs/\(jobID)/events")
                fds.append(fd)
                #expect(status == 200)
            }
            let (extraFD, extra) = try openStream(h, "/v1/jobs/\(jobID)/events")
            fds.append(extraFD)
            #expect(extra == 429)
            // Another tenant gets its own streams up to its cap; past the server-wide cap a third gets 503.
            func streams(_ client: TestClient, count: Int) throws -> [Int] {
                let m = try client.json("POST", "/v1/models", ["name": "m", "kind": "pfc", "input_dim": 2, "output_dim": 2, "basis": 4, "iterations": 5])
                let d = try client.json("POST", "/v1/datasets", ["name": "d", "features": [[0.1, 0.9], [0.8, 0.2]], "labels": [0, 1]])
                let j = try client.json("POST", "/v1/models/\(m.object["id"] as! String)/train", ["dataset_id": d.object["id"] as! String])
                return try (0..<count).map { _ in
                    let fd = try client.connect()
                    fds.append(fd)
                    let head = "GET /v1/jobs/\(j.object["id"] as! String)/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(client.key!)\r\n\r\n"
                    try client.sendAll(fd, Array(head.utf8))
                    var reader = SocketReader(fd: fd)
                    return try reader.readHead().0
                }
            }
            let other = try h.otherTenantClient()
            #expect(try streams(other, count: limits.maxEventStreamsPerTenant + 1)
                == Array(repeating: 200, count: limits.maxEventStreamsPerTenant) + [429])
            #expect(try streams(try h.otherTenantClient(), count: 1) == [503])
            // Every other request of every tenant is still served at once.
            let start = Date()
            #expect(try c.request("GET", "/v1/models/\(modelID)").status == 200)
            #expect(try other.request("GET", "/v1/models").status == 200)
            #expect(Date().timeIntervalSince(start) < 5)
            let metrics = try c.request("GET", "/metrics", auth: false).text
            #expect(metrics.contains("pfc_event_streams_open 8"), "\(metrics)")
            #expect(metrics.contains(#"pfc_event_streams_refused_total{reason="tenant"} 2"#))
            #expect(metrics.contains(#"pfc_event_streams_refused_total{reason="server"} 1"#))
            // Closing streams frees their slots.
            fds.forEach { close($0) }
            fds = []
            let end = Date().addingTimeInterval(10)
            while Date() < end, h.service.eventStreams.openCount > 0 { Thread.sleep(forTimeInterval: 0.1) }
            #expect(h.service.eventStreams.openCount == 0)
            let (again, status) = try openStream(h, "/v1/jobs/\(jobID)/events")
            fds.append(again)
            #expect(status == 200)
            #expect(try c.request("GET", "/healthz", auth: false).text.contains("ok"))
        }
    }

    @Test func predictWorkIsBoundedAndStopsWhenTheClientLeaves() throws {
        try ServiceHarness.with(.sqlite) { h in
            let c = h.client
            // K 2000, N 1000: about 4·10⁹ multiply-adds a row (finding 6: the documented limits allowed hours).
            let model = try c.json("POST", "/v1/models", ["name": "big", "kind": "pfc", "input_dim": 10, "output_dim": 2,
                                                          "basis": 2000, "iterations": 1000, "nonnegative": true])
            let modelID = model.object["id"] as! String
            let row = [Double](repeating: 0.5, count: 10)
            let over = try c.json("POST", "/v1/models/\(modelID)/predict", ["inputs": Array(repeating: row, count: 200)])
            #expect(over.status == 422 && over.errorMessage.contains("max_predict_work"), "\(over.text)")
            // 100 rows fit the limit but take many seconds; a client that goes away stops them.
            let body = json(["inputs": Array(repeating: row, count: 100), "version": 0])
            let fd = try c.connect()
            let head = "POST /v1/models/\(modelID)/predict HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(h.key)\r\n"
                + "Content-Type: application/json\r\nContent-Length: \(body.count)\r\n\r\n"
            try c.sendAll(fd, Array(head.utf8) + Array(body))
            Thread.sleep(forTimeInterval: 1.5)
            // Predictions run on the predict batcher's compute threads (issue 15), not on a handler.
            #expect(h.service.predictBatcher.stats.running > 0, "the prediction should still be running")
            let closedAt = Date()
            close(fd)
            let end = Date().addingTimeInterval(10)
            while h.service.predictBatcher.stats.running > 0 && Date() < end { Thread.sleep(forTimeInterval: 0.01) }
            #expect(h.service.predictBatcher.stats.running == 0)
            let stoppedAfter = Date().timeIntervalSince(closedAt)
            // Run to its end it takes tens of seconds on two idle cores; stopped, it ends within an iteration or
            // two (seconds only on a machine loaded many times over).
            #expect(stoppedAfter < 10, "the abandoned prediction ran on for \(stoppedAfter) s")
            try alive(h)
        }
    }

    @Test func healthReportsASaturatedHandlerPool() throws {
        let location = HarnessLocation(.sqlite)
        defer { location.destroy() }
        let store = try location.openStore()
        defer { store.close() }
        var config = ServiceConfiguration()
        config.dataDirectory = location.dataDirectory
        config.saturationSeconds = 0.3
        let service = PFCService(store: store, configuration: config)
        var router = service.makeRouter()
        router.get("/slow") { _, _ in Thread.sleep(forTimeInterval: 2); return .json(#"{}"#) }
        var http = HTTPServer.Configuration(host: "127.0.0.1", port: 0)
        http.handlerThreads = 1
        let server = HTTPServer(configuration: http, router: router)
        try server.start()
        defer { server.shutdown(deadline: .seconds(1)); _ = server.waitUntilStopped(timeout: .seconds(5)) }
        let client = TestClient(port: server.port, key: nil)
        #expect(try client.request("GET", "/healthz", auth: false).status == 200)
        // One slow request holds the only thread; a second waits for it.
        let fds = try (0..<2).map { _ -> Int32 in
            let fd = try client.connect()
            try client.sendAll(fd, Array("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
            return fd
        }
        defer { fds.forEach { close($0) } }
        Thread.sleep(forTimeInterval: 0.8)
        let saturated = try client.request("GET", "/healthz", auth: false)
        #expect(saturated.status == 503 && saturated.text.contains("saturated"), "\(saturated.text)")
        #expect(saturated.header("Retry-After") == "1")
        _ = server.waitForHandlers(timeout: .seconds(10))
        #expect(try client.request("GET", "/healthz", auth: false).status == 200)
    }
}
