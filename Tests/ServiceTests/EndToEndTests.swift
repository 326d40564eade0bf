import Foundation
import Testing
@testable import Service
@testable import Storage
import TestSupport

/// The whole service over real sockets and a real database: upload, train with live progress,
/// predict, restart, and find everything still there.
@Suite(.serialized) struct EndToEndTests {
    func request(_ h: ServiceHarness, _ method: String, _ path: String, json: Any? = nil, body: Data? = nil,
                 contentType: String? = "application/json") throws -> TestResponse {
        let data = try json.map { try JSONSerialization.data(withJSONObject: $0) } ?? body
        return checked(try h.client.request(method, path, body: data, contentType: contentType), method, path)
    }

    static func testRows() throws -> (inputs: [[Double]], labels: [Int]) {
        let text = try String(contentsOf: ServiceHarness.fixture("digits_test.csv"), encoding: .utf8)
        var inputs: [[Double]] = [], labels: [Int] = []
        for line in text.split(separator: "\n").dropFirst() {
            let f = line.split(separator: ",").map { Double($0)! }
            labels.append(Int(f[0]))
            inputs.append(Array(f.dropFirst()))
        }
        return (inputs, labels)
    }

    @Test(arguments: Backend.all)
    func digitsUploadTrainPredictRestart(backend: Backend) throws {
        let location = HarnessLocation(backend)
        defer { location.destroy() }
        var h = try ServiceHarness(location)

        let csv = try Data(contentsOf: ServiceHarness.fixture("digits_train.csv"))
        let up = try request(h, "POST", "/v1/datasets?name=digits&image_shape=8,8", body: csv, contentType: "text/csv")
        #expect(up.status == 201, "\(up.text)")
        #expect(up.object["examples"] as? Int == 1438 && up.object["features"] as? Int == 64 && up.object["classes"] as? Int == 10)
        let datasetID = try #require(up.object["id"] as? String)
        #expect(up.header("Location") == "/v1/datasets/\(datasetID)")

        let created = try request(h, "POST", "/v1/models", json: ["name": "digits-pfc", "kind": "pfc", "input_dim": 64,
                                                                   "output_dim": 10, "basis": 300, "iterations": 100, "seed": 0])
        #expect(created.status == 201, "\(created.text)")
        let modelID = try #require(created.object["id"] as? String)
        #expect(created.object["version"] as? Int == 0)

        let train = try request(h, "POST", "/v1/models/\(modelID)/train",
                                json: ["dataset_id": datasetID, "epochs": 20, "learning_rate": 0.002, "seed": 0])
        #expect(train.status == 202, "\(train.text)")
        let jobID = try #require(train.object["id"] as? String)
        #expect(train.header("Location") == "/v1/jobs/\(jobID)")

        // Live progress as Server-Sent Events, ending with a terminal event.
        var progressEvents = 0, endState = ""
        let sseStatus = try h.client.events("/v1/jobs/\(jobID)/events") { name, data in
            let job = (try? JSONSerialization.jsonObject(with: Data(data.utf8))) as? [String: Any] ?? [:]
            if name == "progress" && job["progress"] is [String: Any] { progressEvents += 1 }
            if name == "end" { endState = job["state"] as? String ?? ""; return false }
            return true
        }
        #expect(sseStatus == 200)
        #expect(progressEvents >= 2, "progress events: \(progressEvents)")
        #expect(endState == "succeeded")
        let job = checked(try h.client.request("GET", "/v1/jobs/\(jobID)"), "GET", "/v1/jobs/\(jobID)").object
        let result = try #require(job["result"] as? [String: Any])
        #expect(result["model_version"] as? Int == 1)

        // Predictions on the held-out rows.
        let (inputs, labels) = try Self.testRows()
        let predicted = try request(h, "POST", "/v1/models/\(modelID)/predict", json: ["inputs": inputs, "top": 3])
        #expect(predicted.status == 200, "\(predicted.text)")
        let predictions = try #require(predicted.object["predictions"] as? [Int])
        let accuracy = Double(zip(predictions, labels).filter { $0 == $1 }.count) / Double(labels.count)
        #expect(accuracy >= 0.95, "held-out accuracy \(accuracy)")
        let explanations = try #require(predicted.object["explanations"] as? [[[String: Any]]])
        #expect(explanations.count == inputs.count && explanations[0].count == 3)
        let first = explanations[0]
        #expect((first[0]["contribution"] as! Double) >= (first[1]["contribution"] as! Double))

        // Components, with usage from the training data, and one rendered as PNG.
        let comps = try request(h, "GET", "/v1/models/\(modelID)/components?block=0")
        #expect((comps.object["components"] as? [[String: Any]])?.count == 300)
        #expect((comps.object["components"] as? [[String: Any]])?.first?["mean_activation"] is Double)
        let png = try h.client.request("GET", "/v1/models/\(modelID)/components/0/7.png")
        #expect(png.status == 200 && png.header("Content-Type") == "image/png")
        #expect(Array(png.body.prefix(8)) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])

        // Restart: a new process over the same database finds everything.
        h.stop()
        h = try ServiceHarness(location, key: h.key)
        defer { h.stop() }
        #expect(try request(h, "GET", "/v1/datasets/\(datasetID)").object["examples"] as? Int == 1438)
        let model = try request(h, "GET", "/v1/models/\(modelID)")
        #expect(model.object["version"] as? Int == 1)
        let versions = try request(h, "GET", "/v1/models/\(modelID)/versions").object["items"] as? [[String: Any]] ?? []
        #expect(versions.map { $0["version"] as? Int } == [0, 1])
        #expect(versions.last?["reason"] as? String == "train" && versions.last?["parent_version"] as? Int == 0)
        let again = try request(h, "POST", "/v1/models/\(modelID)/predict", json: ["inputs": Array(inputs.prefix(50))])
        #expect(again.object["predictions"] as? [Int] == Array(predictions.prefix(50)))
    }
}
