// Evaluations of model versions on stored datasets (issue 16; table `evaluations`, migration 0007):
// written by POST /v1/models/{id}/evaluate (at once, or by its job) and listed with the version.
import Foundation

/// One evaluation of a model version on a dataset. `result` is the whole document the API shows
/// (Service defines it); accuracy, loss and examples are columns for lists.
public struct Evaluation: Sendable, Equatable {
    public var id: String
    public var tenantID: String
    public var modelID: String
    public var version: Int
    public var datasetID: String
    /// The evaluate job that measured it; nil when the request answered at once.
    public var jobID: String?
    public var accuracy: Double
    public var loss: Double
    public var examples: Int
    public var result: JSONColumn
    public var createdAt: Date

    public init(id: String = StoreID.make(), tenantID: String, modelID: String, version: Int, datasetID: String, jobID: String?,
                accuracy: Double, loss: Double, examples: Int, result: JSONColumn, createdAt: Date = StoreClock.now()) {
        self.id = id; self.tenantID = tenantID; self.modelID = modelID; self.version = version; self.datasetID = datasetID
        self.jobID = jobID; self.accuracy = accuracy; self.loss = loss; self.examples = examples; self.result = result
        self.createdAt = createdAt
    }

    init(row: Row) throws {
        self.init(id: try row.string("id"), tenantID: try row.string("tenant_id"), modelID: try row.string("model_id"),
                  version: try row.int("version"), datasetID: try row.string("dataset_id"), jobID: try row.optionalString("job_id"),
                  accuracy: try row.optionalDouble("accuracy") ?? 0, loss: try row.optionalDouble("loss") ?? 0,
                  examples: try row.int("examples"), result: try row.json("result"), createdAt: try row.date("created_at"))
    }
}

private let evaluationColumns: SQL = "id, tenant_id, model_id, version, dataset_id, job_id, accuracy, loss, examples, result, created_at"
/// The columns without the result document (an empty object in its place): what summaries show.
private let evaluationSummaryColumns: SQL = "id, tenant_id, model_id, version, dataset_id, job_id, accuracy, loss, examples, '{}' AS result, created_at"

extension StoreOperations {
    /// Records an evaluation of an existing version of the tenant's model (in the transaction that
    /// completes its job, when it has one).
    public func insert(_ e: Evaluation) throws {
        try withSession(writing: true) { session in
            try session.requireModel(e.modelID, tenantID: e.tenantID)
            guard try session.connection.queryOne("SELECT version FROM model_versions WHERE model_id = \(e.modelID) AND version = \(e.version)") != nil else {
                throw StoreError.notFound("model \(e.modelID) version \(e.version)")
            }
            try session.connection.execute("""
                INSERT INTO evaluations (\(sql: evaluationColumns)) VALUES (\(e.id), \(e.tenantID), \(e.modelID), \(e.version),
                \(e.datasetID), \(e.jobID), \(e.accuracy), \(e.loss), \(e.examples), \(e.result), \(e.createdAt))
                """)
        }
    }

    /// The evaluations of one version of the tenant's model, oldest first (notFound for another
    /// tenant's or an unknown model). `summariesOnly`: each `result` is left empty (`{}`), not read.
    public func evaluations(modelID: String, version: Int, tenantID: String, page: PageRequest = PageRequest(),
                            summariesOnly: Bool = false) throws -> Page<Evaluation> {
        try withSession(writing: false) { session in
            try session.requireModel(modelID, tenantID: tenantID)
            return try session.page("""
                SELECT \(sql: summariesOnly ? evaluationSummaryColumns : evaluationColumns) FROM evaluations WHERE model_id = \(modelID) AND version = \(version)
                AND tenant_id = \(tenantID) ORDER BY created_at, id
                """, page, Evaluation.init(row:))
        }
    }

    /// One evaluation of the tenant's model by id.
    public func evaluation(id: String, modelID: String, tenantID: String) throws -> Evaluation {
        try withSession(writing: false) { session in
            try session.one("""
                SELECT \(sql: evaluationColumns) FROM evaluations WHERE id = \(id) AND model_id = \(modelID) AND tenant_id = \(tenantID)
                """, notFound: "evaluation \(id)", Evaluation.init(row:))
        }
    }
}
