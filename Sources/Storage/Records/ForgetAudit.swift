// ForgetAudit: the lasting record of one forget request that reset basis columns.
import Foundation

/// What was unlearned, when, from which ledger batches, and the version it produced. Kept when the
/// model is deleted.
public struct ForgetAudit: Codable, Sendable, Equatable {
    public var id: String
    public var tenantID: String
    public var modelID: String
    /// The model version the forget wrote.
    public var version: Int
    /// The request as JSON (which selector, with its values).
    public var request: String
    /// JSON array of the ledger batch ids selected.
    public var batches: String
    /// JSON array of the basis columns reset.
    public var columnsReset: String
    public var accuracyBefore: Double?
    public var accuracyAfter: Double?
    /// The membership-inference verification as JSON (issue 17; nil without a reference dataset).
    public var verification: String?
    public var createdAt: Date

    /// A new audit row with a fresh id.
    public init(id: String = StoreID.make(), tenantID: String, modelID: String, version: Int, request: String, batches: String,
                columnsReset: String, accuracyBefore: Double? = nil, accuracyAfter: Double? = nil, verification: String? = nil,
                createdAt: Date = StoreClock.now()) {
        self.id = id
        self.tenantID = tenantID
        self.modelID = modelID
        self.version = version
        self.request = request
        self.batches = batches
        self.columnsReset = columnsReset
        self.accuracyBefore = accuracyBefore
        self.accuracyAfter = accuracyAfter
        self.verification = verification
        self.createdAt = createdAt
    }

    init(row: Row) throws {
        self.init(id: try row.string("id"), tenantID: try row.string("tenant_id"), modelID: try row.string("model_id"),
                  version: try row.int("version"), request: try row.string("request"), batches: try row.string("batches"),
                  columnsReset: try row.string("columns_reset"), accuracyBefore: try row.optionalDouble("accuracy_before"),
                  accuracyAfter: try row.optionalDouble("accuracy_after"), verification: try row.optionalString("verification"),
                  createdAt: try row.date("created_at"))
    }
}
