// NPEFF analyses and their components.
import Foundation

private let analysisColumns: SQL = "id, tenant_id, model_id, model_version, dataset_id, kind, params, state, summary, job_id, created_at"
private let componentColumns: SQL = "c.analysis_id, c.component_index, c.pseudo_fisher, c.coefficients, c.top_examples, c.summary"

extension StoreOperations {
    /// Inserts an analysis; `notFound` if its model is not the tenant's.
    public func insert(_ analysis: Analysis) throws {
        try withSession(writing: true) { session in
            try session.requireModel(analysis.modelID, tenantID: analysis.tenantID)
            try session.connection.execute("""
                INSERT INTO analyses (\(sql: analysisColumns)) VALUES (\(analysis.id), \(analysis.tenantID), \(analysis.modelID),
                \(analysis.modelVersion), \(analysis.datasetID), \(analysis.kind), \(analysis.params), \(analysis.state),
                \(analysis.summary), \(analysis.jobID), \(analysis.createdAt))
                """)
        }
    }

    /// The tenant's analysis, or `notFound`.
    public func analysis(id: String, tenantID: String) throws -> Analysis {
        try withSession(writing: false) { session in
            try session.one("SELECT \(sql: analysisColumns) FROM analyses WHERE id = \(id) AND tenant_id = \(tenantID)",
                            notFound: "analysis \(id)", Analysis.init(row:))
        }
    }

    /// The tenant's analyses (optionally of one model), oldest first.
    public func analyses(tenantID: String, modelID: String? = nil, page: PageRequest = PageRequest()) throws -> Page<Analysis> {
        try withSession(writing: false) { session in
            var statement: SQL = "SELECT \(sql: analysisColumns) FROM analyses WHERE tenant_id = \(tenantID)"
            if let modelID { statement = statement + " AND model_id = \(modelID)" }
            return try session.page(statement + " ORDER BY created_at, id", page, Analysis.init(row:))
        }
    }

    /// Sets an analysis's state and (when given) summary.
    public func updateAnalysis(id: String, tenantID: String, state: String, summary: String? = nil) throws {
        try withSession(writing: true) { session in
            try session.requireChange("""
                UPDATE analyses SET state = \(state), summary = COALESCE(\(summary), summary)
                WHERE id = \(id) AND tenant_id = \(tenantID)
                """, notFound: "analysis \(id)")
        }
    }

    /// Deletes an analysis and its components.
    public func deleteAnalysis(id: String, tenantID: String) throws {
        try withSession(writing: true) { session in
            try session.requireChange("DELETE FROM analyses WHERE id = \(id) AND tenant_id = \(tenantID)", notFound: "analysis \(id)")
        }
    }

    /// Inserts components of an analysis; `conflict` for a duplicate index.
    public func insert(_ components: [AnalysisComponent], tenantID: String) throws {
        try withSession(writing: true) { session in
            for analysisID in Set(components.map(\.analysisID)) { _ = try session.analysis(id: analysisID, tenantID: tenantID) }
            for component in components {
                try session.connection.execute("""
                    INSERT INTO analysis_components (analysis_id, component_index, pseudo_fisher, coefficients, top_examples, summary)
                    VALUES (\(component.analysisID), \(component.index), \(component.pseudoFisher), \(component.coefficients),
                    \(component.topExamples), \(component.summary))
                    """)
            }
        }
    }

    /// One component, or `notFound`.
    public func analysisComponent(analysisID: String, index: Int, tenantID: String) throws -> AnalysisComponent {
        try withSession(writing: false) { session in
            try session.one("""
                SELECT \(sql: componentColumns) FROM analysis_components c JOIN analyses a ON a.id = c.analysis_id
                WHERE c.analysis_id = \(analysisID) AND c.component_index = \(index) AND a.tenant_id = \(tenantID)
                """, notFound: "component \(index) of analysis \(analysisID)", AnalysisComponent.init(row:))
        }
    }

    /// All components of an analysis by index. `summariesOnly`: their blobs (pseudo-Fisher,
    /// coefficients) are left empty, not read: a list shows summaries, and the blobs of a large
    /// analysis are gigabytes.
    public func analysisComponents(analysisID: String, tenantID: String, summariesOnly: Bool = false) throws -> [AnalysisComponent] {
        try withSession(writing: false) { session in
            _ = try session.analysis(id: analysisID, tenantID: tenantID)
            if summariesOnly {
                return try session.connection.query("""
                    SELECT c.analysis_id, c.component_index, c.top_examples, c.summary FROM analysis_components c
                    WHERE c.analysis_id = \(analysisID) ORDER BY c.component_index
                    """).map { row in
                        AnalysisComponent(analysisID: try row.string("analysis_id"), index: try row.int("component_index"), pseudoFisher: Data(),
                                          topExamples: try row.string("top_examples"), summary: try row.string("summary"))
                    }
            }
            return try session.connection.query("""
                SELECT \(sql: componentColumns) FROM analysis_components c WHERE c.analysis_id = \(analysisID)
                ORDER BY c.component_index
                """).map(AnalysisComponent.init(row:))
        }
    }
}
