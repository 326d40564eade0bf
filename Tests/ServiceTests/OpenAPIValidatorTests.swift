// OpenAPIValidatorTests: the validator the end-to-end tests run on real responses accepts what
// openapi.yaml allows and reports, by JSON path, what it does not.
import Foundation
import Testing
import TestSupport

@Suite struct OpenAPIValidatorTests {
    let validator: OpenAPIValidator

    init() throws { validator = try OpenAPIValidator() }

    static var dataset: [String: Any] { [
        "id": "0f8fad5b-d9cb-469f-a165-70867728950e", "name": "digits", "examples": 1797,
        "features": 64, "classes": 10, "image_shape": [8, 8], "created_at": "2026-11-23T12:00:00Z",
        "sequence_length": 8, "step_features": 8, "labels_per_step": false,
    ] }

    static func json(_ object: Any) throws -> Data { try JSONSerialization.data(withJSONObject: object) }

    func datasetProblems(_ object: Any, status: Int = 200, path: String = "/v1/datasets/abc") throws -> [String] {
        validator.problems(method: "GET", path: path, status: status, contentType: "application/json",
                           body: try Self.json(object))
    }

    @Test func validDatasetPasses() throws {
        #expect(try datasetProblems(Self.dataset) == [])
        var nullShape = Self.dataset
        nullShape["image_shape"] = NSNull()
        #expect(try datasetProblems(nullShape) == [])
        #expect(validator.problems(method: "POST", path: "/v1/datasets?name=digits", status: 201,
                                   contentType: "application/json; charset=utf-8", body: try Self.json(Self.dataset),
                                   headers: ["x-request-id": "r1", "Location": "/v1/datasets/abc"]) == [])
    }

    @Test func missingRequiredFieldIsReported() throws {
        var d = Self.dataset
        d.removeValue(forKey: "classes")
        let problems = try datasetProblems(d)
        #expect(problems.count == 1)
        #expect(problems.first?.contains("missing required classes") == true, "\(problems)")
    }

    @Test func wrongTypeIsReported() throws {
        var d = Self.dataset
        d["examples"] = "1797"
        var problems = try datasetProblems(d)
        #expect(problems.count == 1)
        #expect(problems.first?.contains("$.examples: expected integer") == true, "\(problems)")

        d = Self.dataset
        d["examples"] = 17.5  // a number, not an integer
        problems = try datasetProblems(d)
        #expect(problems.first?.contains("$.examples: expected integer") == true, "\(problems)")

        d = Self.dataset
        d["examples"] = true  // a boolean is not a number
        problems = try datasetProblems(d)
        #expect(problems.first?.contains("$.examples: expected integer, got boolean") == true, "\(problems)")

        d = Self.dataset
        d["image_shape"] = [8, 8, 1]  // maxItems 2
        problems = try datasetProblems(d)
        #expect(problems.first?.contains("$.image_shape") == true, "\(problems)")
    }

    @Test func extraPropertyIsReported() throws {
        var d = Self.dataset
        d["owner"] = "someone"
        let problems = try datasetProblems(d)
        #expect(problems.count == 1)
        #expect(problems.first?.contains("unexpected property owner") == true, "\(problems)")
    }

    @Test func undocumentedStatusIsReported() throws {
        let problems = try datasetProblems(Self.dataset, status: 418)
        #expect(problems.count == 1)
        #expect(problems.first?.contains("status 418 is not documented") == true, "\(problems)")
        // 409 is documented for DELETE /v1/datasets/{id} but not for GET.
        #expect(try datasetProblems(["error": ["code": "conflict", "message": "in use"]], status: 409).count == 1)
    }

    @Test func errorBodiesAndNestedSchemas() throws {
        let error = try Self.json(["error": ["code": "not_found", "message": "no model abc"]])
        #expect(validator.problems(method: "GET", path: "/v1/models/abc", status: 404,
                                   contentType: "application/json", body: error) == [])
        #expect(validator.problems(method: "GET", path: "/v1/models/abc", status: 404, contentType: "text/html",
                                   body: error).first?.contains("Content-Type text/html is not documented") == true)
        #expect(validator.problems(method: "GET", path: "/v1/models/abc", status: 401, contentType: "application/json",
                                   body: error, headers: ["X-Request-Id": "r"]) == ["GET /v1/models/abc → 401: missing header WWW-Authenticate"])

        var job: [String: Any] = [
            "id": "j1", "kind": "train", "state": "running", "model_id": "m1", "dataset_id": "d1",
            "progress": ["epoch": 1, "epochs": 10, "batch": 3, "batches": 9, "loss": 0.5, "accuracy": 0.75,
                         "examples_per_second": 1200.5, "validation_loss": NSNull(), "validation_accuracy": NSNull()],
            "result": NSNull(), "error": NSNull(), "attempts": 1, "cancel_requested": false,
            "created_at": "2026-11-23T12:00:00.123Z", "started_at": "2026-11-23T12:00:01Z", "finished_at": NSNull(),
        ]
        let get = { (j: [String: Any]) throws -> [String] in
            validator.problems(method: "GET", path: "/v1/jobs/j1", status: 200, contentType: "application/json", body: try Self.json(j))
        }
        #expect(try get(job) == [])
        job["state"] = "paused"
        #expect(try get(job).first?.contains("$.state: \"paused\" is not one of") == true)
        job["state"] = "succeeded"
        job["result"] = ["model_version": 1, "metrics": ["train_accuracy": 0.99, "anything": "goes"]]
        #expect(try get(job) == [])
        job["result"] = ["model_version": -1, "metrics": [:] as [String: Any]]
        #expect(try get(job).contains { $0.contains("$.result.model_version: -1 is beyond minimum 0") })
        job["result"] = NSNull()
        // A training progress without its loss (close enough to Progress that its problems are the ones reported).
        job["progress"] = ["epoch": 1, "epochs": 2, "batch": 1, "batches": 3, "accuracy": 0.5, "examples_per_second": 1,
                           "validation_loss": NSNull(), "validation_accuracy": NSNull()] as [String: Any]
        #expect(try get(job).contains { $0.contains("$.progress: missing required loss") })
        job["progress"] = NSNull()
        job["created_at"] = "yesterday"
        #expect(try get(job).contains { $0.contains("is not an RFC 3339 date-time") })
    }

    @Test func templatesWithSuffixesAndBodilessResponses() throws {
        #expect(validator.problems(method: "GET", path: "/v1/models/abc/components/0/12.png", status: 200,
                                   contentType: "image/png", body: Data([0x89, 0x50, 0x4E, 0x47])) == [])
        #expect(validator.problems(method: "DELETE", path: "/v1/datasets/abc", status: 204, contentType: nil, body: Data()) == [])
        #expect(validator.problems(method: "DELETE", path: "/v1/datasets/abc", status: 204, contentType: nil,
                                   body: Data("x".utf8)).count == 1)
        #expect(validator.problems(method: "GET", path: "/v2/nothing", status: 200, contentType: nil, body: Data())
            .first?.contains("no path template matches") == true)
        #expect(validator.problems(method: "PUT", path: "/v1/datasets", status: 200, contentType: nil, body: Data())
            .first?.contains("PUT is not documented") == true)
        let list = try Self.json(["items": [Self.dataset], "next_offset": NSNull()])
        #expect(validator.problems(method: "GET", path: "/v1/datasets?limit=1", status: 200, contentType: "application/json", body: list) == [])
        #expect(validator.problems(method: "GET", path: "/v1/datasets", status: 200, contentType: "application/json",
                                   body: Data("{not json".utf8)).first?.contains("body is not JSON") == true)
    }
}
