// Model and ModelVersion: a network's identity and its immutable trained states.
import Foundation

/// A model: name, kind and architecture; its weights live in `ModelVersion`s.
public struct Model: Codable, Sendable, Equatable {
    public var id: String
    public var tenantID: String
    public var name: String
    /// e.g. `pfc`, `residual_pfc`, `factorized_rnn`, `mlp`.
    public var kind: String
    /// Architecture JSON.
    public var architecture: String
    public var createdAt: Date

    /// A new model with a fresh id.
    public init(id: String = StoreID.make(), tenantID: String, name: String, kind: String, architecture: String,
                createdAt: Date = StoreClock.now()) {
        self.id = id
        self.tenantID = tenantID
        self.name = name
        self.kind = kind
        self.architecture = architecture
        self.createdAt = createdAt
    }

    init(row: Row) throws {
        self.init(id: try row.string("id"), tenantID: try row.string("tenant_id"), name: try row.string("name"),
                  kind: try row.string("kind"), architecture: try row.string("architecture"), createdAt: try row.date("created_at"))
    }
}

/// Why a model version exists.
public enum VersionReason: String, Codable, Sendable, CaseIterable, SQLBindable {
    case create, train, task, forget, perturb
    /// Made by `POST /v1/models/import` from an uploaded file.
    case `import`
}

/// One immutable state of a model (the weights are read separately: `modelWeights`).
public struct ModelVersion: Codable, Sendable, Equatable {
    public var modelID: String
    /// 1, 2, 3, …; unique per model.
    public var version: Int
    public var parentVersion: Int?
    public var reason: VersionReason
    /// The version's metrics (the service's typed metrics).
    public var metrics: JSONColumn
    public var createdAt: Date

    /// A version record (its weights are passed to `insertModelVersion`).
    public init(modelID: String, version: Int, parentVersion: Int?, reason: VersionReason, metrics: JSONColumn = .emptyObject,
                createdAt: Date = StoreClock.now()) {
        self.modelID = modelID
        self.version = version
        self.parentVersion = parentVersion
        self.reason = reason
        self.metrics = metrics
        self.createdAt = createdAt
    }

    init(row: Row) throws {
        self.init(modelID: try row.string("model_id"), version: try row.int("version"),
                  parentVersion: try row.optionalInt("parent_version"), reason: try row.decode("reason", as: VersionReason.self),
                  metrics: try row.json("metrics"), createdAt: try row.date("created_at"))
    }
}
