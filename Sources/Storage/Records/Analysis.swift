// Analysis and AnalysisComponent: NPEFF decompositions of a model version on a dataset.
import Foundation

/// An NPEFF analysis of one model version.
public struct Analysis: Codable, Sendable, Equatable {
    public var id: String
    public var tenantID: String
    public var modelID: String
    public var modelVersion: Int
    public var datasetID: String?
    /// e.g. `diagonal`, `low_rank`.
    public var kind: String
    public var params: String
    /// e.g. `pending`, `running`, `ready`, `failed`.
    public var state: String
    public var summary: String?
    public var jobID: String?
    public var createdAt: Date

    /// A new analysis with a fresh id.
    public init(id: String = StoreID.make(), tenantID: String, modelID: String, modelVersion: Int, datasetID: String? = nil,
                kind: String, params: String = "{}", state: String = "pending", summary: String? = nil,
                jobID: String? = nil, createdAt: Date = StoreClock.now()) {
        self.id = id
        self.tenantID = tenantID
        self.modelID = modelID
        self.modelVersion = modelVersion
        self.datasetID = datasetID
        self.kind = kind
        self.params = params
        self.state = state
        self.summary = summary
        self.jobID = jobID
        self.createdAt = createdAt
    }

    init(row: Row) throws {
        self.init(id: try row.string("id"), tenantID: try row.string("tenant_id"), modelID: try row.string("model_id"),
                  modelVersion: try row.int("model_version"), datasetID: try row.optionalString("dataset_id"),
                  kind: try row.string("kind"), params: try row.string("params"), state: try row.string("state"),
                  summary: try row.optionalString("summary"), jobID: try row.optionalString("job_id"),
                  createdAt: try row.date("created_at"))
    }
}

/// One component of an analysis: its pseudo-Fisher blob, coefficients and top examples.
public struct AnalysisComponent: Codable, Sendable, Equatable {
    public var analysisID: String
    public var index: Int
    public var pseudoFisher: Data
    public var coefficients: Data?
    /// Top examples JSON.
    public var topExamples: String
    public var summary: String

    /// A component record.
    public init(analysisID: String, index: Int, pseudoFisher: Data, coefficients: Data? = nil,
                topExamples: String = "[]", summary: String = "{}") {
        self.analysisID = analysisID
        self.index = index
        self.pseudoFisher = pseudoFisher
        self.coefficients = coefficients
        self.topExamples = topExamples
        self.summary = summary
    }

    init(row: Row) throws {
        self.init(analysisID: try row.string("analysis_id"), index: try row.int("component_index"),
                  pseudoFisher: try row.data("pseudo_fisher"), coefficients: try row.optionalData("coefficients"),
                  topExamples: try row.string("top_examples"), summary: try row.string("summary"))
    }
}
