// Optimizer states: the optimizer's statistics a train job kept with the version it wrote, read
// back by a follow-on train job that continues them ("continue_optimizer"). One per version at
// most; deleted with their model.
import Foundation

/// The optimizer state stored with one model version.
public struct StoredOptimizerState: Sendable, Equatable {
    public var modelID: String
    public var version: Int
    /// The optimizer's name (`rmsprop`, `adam`), so a request can be checked without decoding `state`.
    public var kind: String
    /// The engine's `OptimizerState`, encoded by the service.
    public var state: Data
    public var createdAt: Date

    public init(modelID: String, version: Int, kind: String, state: Data, createdAt: Date = StoreClock.now()) {
        self.modelID = modelID
        self.version = version
        self.kind = kind
        self.state = state
        self.createdAt = createdAt
    }
}

extension StoreOperations {
    /// Stores `state` with its version (inside the transaction that writes the version).
    public func insert(_ state: StoredOptimizerState) throws {
        try withSession(writing: true) { session in
            try session.connection.execute("""
                INSERT INTO optimizer_states (model_id, version, kind, state, created_at)
                VALUES (\(state.modelID), \(state.version), \(state.kind), \(state.state), \(state.createdAt))
                """)
        }
    }

    /// The kind of optimizer state kept with a version of the tenant's model, nil when it has none.
    public func optimizerStateKind(modelID: String, version: Int, tenantID: String) throws -> String? {
        try withSession(writing: false) { session in
            try session.connection.queryOne("""
                SELECT o.kind FROM optimizer_states o JOIN models m ON m.id = o.model_id
                WHERE o.model_id = \(modelID) AND o.version = \(version) AND m.tenant_id = \(tenantID)
                """).map { try $0.string("kind") }
        }
    }

    /// The optimizer state kept with a version of the tenant's model, nil when it has none.
    public func optimizerState(modelID: String, version: Int, tenantID: String) throws -> StoredOptimizerState? {
        try withSession(writing: false) { session in
            try session.connection.queryOne("""
                SELECT o.model_id, o.version, o.kind, o.state, o.created_at FROM optimizer_states o JOIN models m ON m.id = o.model_id
                WHERE o.model_id = \(modelID) AND o.version = \(version) AND m.tenant_id = \(tenantID)
                """).map {
                StoredOptimizerState(modelID: try $0.string("model_id"), version: try $0.int("version"), kind: try $0.string("kind"),
                                     state: try $0.data("state"), createdAt: try $0.date("created_at"))
            }
        }
    }
}
