// Models, their versions and weights.
import Foundation

private let modelColumns: SQL = "id, tenant_id, name, kind, architecture, created_at"
private let versionColumns: SQL = "v.model_id, v.version, v.parent_version, v.reason, v.metrics, v.created_at"

extension StoreOperations {
    /// Inserts a model (its first version follows with `appendModelVersion`).
    public func insert(_ model: Model) throws {
        try withSession(writing: true) { session in
            try session.connection.execute("""
                INSERT INTO models (\(sql: modelColumns)) VALUES (\(model.id), \(model.tenantID), \(model.name),
                \(model.kind), \(model.architecture), \(model.createdAt))
                """)
        }
    }

    /// The tenant's model, or `notFound`.
    public func model(id: String, tenantID: String) throws -> Model {
        try withSession(writing: false) { session in
            try session.one("SELECT \(sql: modelColumns) FROM models WHERE id = \(id) AND tenant_id = \(tenantID)",
                            notFound: "model \(id)", Model.init(row:))
        }
    }

    /// The tenant's model and its highest version number, in one statement (one snapshot, one round
    /// trip: the `GET /v1/models/{id}` path); `notFound` as `model(id:tenantID:)` when there is no such
    /// model of this tenant, and as `latestModelVersion` when it has no version.
    public func modelWithLatestVersion(id: String, tenantID: String) throws -> (model: Model, latestVersion: Int) {
        try withStatementSession { session in
            let row = try session.one("""
                SELECT m.id, m.tenant_id, m.name, m.kind, m.architecture, m.created_at,
                (SELECT max(v.version) FROM model_versions v WHERE v.model_id = m.id) AS latest_version
                FROM models m WHERE m.id = \(id) AND m.tenant_id = \(tenantID)
                """, notFound: "model \(id)") { $0 }
            guard let latest = try row.optionalInt("latest_version") else { throw StoreError.notFound("versions of model \(id)") }
            return (try Model(row: row), latest)
        }
    }

    /// The tenant's models, oldest first.
    public func models(tenantID: String, page: PageRequest = PageRequest()) throws -> Page<Model> {
        try withSession(writing: false) { session in
            try session.page("SELECT \(sql: modelColumns) FROM models WHERE tenant_id = \(tenantID) ORDER BY created_at, id",
                             page, Model.init(row:))
        }
    }

    /// Deletes a model with its versions, ledger and components.
    public func deleteModel(id: String, tenantID: String) throws {
        try withSession(writing: true) { session in
            try session.requireChange("DELETE FROM models WHERE id = \(id) AND tenant_id = \(tenantID)", notFound: "model \(id)")
        }
    }

    /// Inserts a version with an explicit number; `conflict` if (model, version) exists.
    public func insert(_ version: ModelVersion, weights: Data, tenantID: String) throws {
        try withSession(writing: true) { session in
            try session.requireModel(version.modelID, tenantID: tenantID)
            try session.connection.execute("""
                INSERT INTO model_versions (model_id, version, parent_version, reason, metrics, weights, created_at)
                VALUES (\(version.modelID), \(version.version), \(version.parentVersion), \(version.reason),
                \(version.metrics), \(weights), \(version.createdAt))
                """)
        }
    }

    /// Appends the next version (highest + 1, or 1) and returns it. Two writers racing for
    /// the same number get `conflict` for the loser.
    public func appendModelVersion(modelID: String, tenantID: String, parentVersion: Int?, reason: VersionReason,
                                   metrics: JSONColumn = .emptyObject, weights: Data) throws -> ModelVersion {
        try withSession(writing: true) { session in
            // Two jobs of one model finishing at once (two replicas) must not both take max + 1: on
            // PostgreSQL a row lock on the model serialises the numbering (SQLite writers are serial).
            if session.dialect == .postgres {
                guard try session.connection.queryOne(
                    "SELECT id FROM models WHERE id = \(modelID) AND tenant_id = \(tenantID) FOR NO KEY UPDATE") != nil else {
                    throw StoreError.notFound("model \(modelID)")
                }
            } else {
                try session.requireModel(modelID, tenantID: tenantID)
            }
            let highest = try session.connection.queryOne(
                "SELECT max(version) AS highest FROM model_versions WHERE model_id = \(modelID)")?.optionalInt("highest") ?? 0
            let version = ModelVersion(modelID: modelID, version: highest + 1, parentVersion: parentVersion,
                                       reason: reason, metrics: metrics)
            try session.insert(version, weights: weights, tenantID: tenantID)
            return version
        }
    }

    /// One version, or `notFound`.
    public func modelVersion(modelID: String, version: Int, tenantID: String) throws -> ModelVersion {
        try withSession(writing: false) { session in
            try session.one("""
                SELECT \(sql: versionColumns) FROM model_versions v JOIN models m ON m.id = v.model_id
                WHERE v.model_id = \(modelID) AND v.version = \(version) AND m.tenant_id = \(tenantID)
                """, notFound: "version \(version) of model \(modelID)", ModelVersion.init(row:))
        }
    }

    /// The highest version, or `notFound` when the model has none (or is not the tenant's).
    public func latestModelVersion(modelID: String, tenantID: String) throws -> ModelVersion {
        try withSession(writing: false) { session in
            try session.one("""
                SELECT \(sql: versionColumns) FROM model_versions v JOIN models m ON m.id = v.model_id
                WHERE v.model_id = \(modelID) AND m.tenant_id = \(tenantID) ORDER BY v.version DESC LIMIT 1
                """, notFound: "versions of model \(modelID)", ModelVersion.init(row:))
        }
    }

    /// The model's versions in order (without weights).
    public func modelVersions(modelID: String, tenantID: String, reason: VersionReason? = nil,
                              page: PageRequest = PageRequest()) throws -> Page<ModelVersion> {
        try withSession(writing: false) { session in
            try session.requireModel(modelID, tenantID: tenantID)
            var statement: SQL = "SELECT \(sql: versionColumns) FROM model_versions v WHERE v.model_id = \(modelID)"
            if let reason { statement = statement + " AND v.reason = \(reason)" }
            return try session.page(statement + " ORDER BY v.version", page, ModelVersion.init(row:))
        }
    }

    /// A version's weights blob.
    public func modelWeights(modelID: String, version: Int, tenantID: String) throws -> Data {
        try withSession(writing: false) { session in
            try session.one("""
                SELECT v.weights FROM model_versions v JOIN models m ON m.id = v.model_id
                WHERE v.model_id = \(modelID) AND v.version = \(version) AND m.tenant_id = \(tenantID)
                """, notFound: "version \(version) of model \(modelID)") { try $0.data("weights") }
        }
    }

    /// Replaces a model's architecture JSON (a continual task that grew the basis changes its shape).
    public func updateModelArchitecture(modelID: String, tenantID: String, architecture: String) throws {
        try withSession(writing: true) { session in
            try session.requireChange(
                "UPDATE models SET architecture = \(architecture) WHERE id = \(modelID) AND tenant_id = \(tenantID)",
                notFound: "model \(modelID)")
        }
    }

    /// Replaces a version's metrics JSON.
    public func updateMetrics(modelID: String, version: Int, tenantID: String, metrics: JSONColumn) throws {
        try withSession(writing: true) { session in
            try session.requireModel(modelID, tenantID: tenantID)
            try session.requireChange(
                "UPDATE model_versions SET metrics = \(metrics) WHERE model_id = \(modelID) AND version = \(version)",
                notFound: "version \(version) of model \(modelID)")
        }
    }
}
