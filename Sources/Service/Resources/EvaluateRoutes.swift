// EvaluateRoutes: `POST /v1/models/{id}/evaluate` (issue 16): a model version on a stored dataset.
// Small evaluations answer at once (200); the rest run as an `evaluate` job on the workers (202 +
// Location). Either way the result is stored on the version (`evaluations`, migration 0007) and
// listed at `GET /v1/models/{id}/versions/{v}/evaluations`.
import Foundation
import HTTP
import Linalg
import PFC
import Storage

/// `POST /v1/models/{id}/evaluate`.
struct EvaluateRequest: Decodable, ExplicitJSONKeys {
    var datasetID: String
    var version: Int?
    /// Run as a job even when the evaluation is small enough to answer at once.
    var async: Bool?
    enum CodingKeys: String, CodingKey { case version, async, datasetID = "dataset_id" }
}

extension ServiceLimits {
    /// Largest evaluation answered at once on the handler thread, in multiply-adds of its forward
    /// passes (rows × `Architecture.inferenceWork`): a tenth of `max_predict_work` (5·10¹⁰ by
    /// default; the digits test set at K 300, N 100 is 3.2·10⁹). Larger ones run as a job.
    var maxInlineEvaluationWork: Int { maxPredictWork / 10 }
}

extension PFCService {
    func registerEvaluate(_ r: inout Router) {
        let limits = configuration.limits
        r.post("/v1/models/{id}/evaluate") { [self] request, ctx in
            let tenant = try ctx.tenantID(), id = try request.pathParameter("id")
            let body = try JSONCoding.decode(EvaluateRequest.self, from: request, maxBytes: limits.maxRequestBytes)
            if let v = body.version, v < 0 { throw APIError.invalid("version must be a non-negative integer") }
            let (model, dataset, version) = try storeCall {
                try store.read { s in
                    let m = try s.model(id: id, tenantID: tenant)
                    let v = try body.version.map { try s.modelVersion(modelID: id, version: $0, tenantID: tenant) }
                        ?? s.latestModelVersion(modelID: id, tenantID: tenant)
                    return (m, try s.dataset(id: body.datasetID, tenantID: tenant), v)
                }
            }
            let arch = try spec(of: model).architecture
            try checkDataset(dataset, against: arch, tenantID: tenant, perStepLabels: true)
            // As predict: version 0 is the random initialization, evaluated only when asked for.
            if body.version == nil && version.version == 0 {
                throw HTTPError(.conflict, code: "not_trained", message: "model \(id) is not trained yet (its only version is 0, the random "
                    + "initialization); train it (POST /v1/models/{id}/train or /tasks), or ask for \"version\": 0 explicitly")
            }
            let work = arch.inferenceWork(rows: dataset.examples)
            if body.async != true, let work, work <= limits.maxInlineEvaluationWork {
                let result = try evaluateNow(modelID: id, tenantID: tenant, version: version.version, dataset: dataset, token: ctx.computeToken)
                return try JSONCoding.response(result)
            }
            try quotas.admitJob(tenantID: tenant)
            let job = try Job(tenantID: tenant, modelID: id, params: .evaluate(EvaluateJobParams(datasetID: dataset.id, version: version.version)))
            try storeCall {
                try store.transaction { s in
                    try quotas.admitJob(tenantID: tenant, in: s)
                    try s.enqueue(job)
                }
            }
            workers.wake()
            return try JSONCoding.response(JobDTO(job: job), status: .accepted, headers: [("Location", "/v1/jobs/\(job.id)")])
        }
    }

    /// A small evaluation on this request's thread, stopped when its client goes; stored on the version.
    func evaluateNow(modelID: String, tenantID: String, version: Int, dataset: Dataset, token: CancellationToken) throws -> EvaluationDTO {
        let (_, network) = try loadNetwork(modelID: modelID, tenantID: tenantID, version: version)
        let data = try storeCall {
            try DatasetBlobReader.load(from: store, dataset: dataset, tenantID: tenantID, classes: network.architecture.outputDim,
                                      limits: configuration.limits)
        }
        var evaluator = ModelEvaluator(network: network, data: data)
        do {
            try ComputeCancellation.run(token) {
                try evaluator.run { _ throws in if token.isCancelled { throw EvaluationStop.cancelled } }
            }
        } catch EvaluationStop.notFinite(let row) {
            throw APIError.invalid(ModelEvaluator.notFiniteMessage(row: row, version: version))
        } catch {
            throw requestAbandoned()
        }
        if token.isCancelled { throw requestAbandoned() }
        let result = evaluator.result(modelID: modelID, version: version, datasetID: dataset.id, jobID: nil)
        let record = try result.record(tenantID: tenantID)
        try storeCall { try store.insert(record) }
        return result
    }
}
