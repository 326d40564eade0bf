// Forget audits: written with the forget's version, listed per model.
import Foundation

private let auditColumns: SQL = """
    id, tenant_id, model_id, version, request, batches, columns_reset, accuracy_before, accuracy_after, verification, created_at
    """

extension StoreOperations {
    /// Records a forget (in the transaction that writes its version).
    public func insert(_ audit: ForgetAudit) throws {
        try withSession(writing: true) { session in
            try session.connection.execute("""
                INSERT INTO forget_audits (\(sql: auditColumns)) VALUES (\(audit.id), \(audit.tenantID), \(audit.modelID),
                \(audit.version), \(audit.request), \(audit.batches), \(audit.columnsReset), \(audit.accuracyBefore),
                \(audit.accuracyAfter), \(audit.verification), \(audit.createdAt))
                """)
        }
    }

    /// The tenant's forget audits of a model id (also after the model was deleted), oldest first.
    public func forgetAudits(modelID: String, tenantID: String, page: PageRequest = PageRequest()) throws -> Page<ForgetAudit> {
        try withSession(writing: false) { session in
            try session.page("""
                SELECT \(sql: auditColumns) FROM forget_audits WHERE tenant_id = \(tenantID) AND model_id = \(modelID)
                ORDER BY created_at, id
                """, page, ForgetAudit.init(row:))
        }
    }
}
