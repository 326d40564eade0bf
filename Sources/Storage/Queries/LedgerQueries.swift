// The batch ledger and component metadata.

private let ledgerColumns: SQL = "l.id, l.model_id, l.version, l.task, l.epoch, l.batch_index, l.examples, l.windows, l.dataset_id, l.created_at"
private let componentColumns: SQL = "c.model_id, c.version, c.block, c.column_index, c.provenance, c.state, c.norms"

/// A model's continual-learning footprint (`continualUsage`).
public struct ContinualUsage: Sendable, Equatable {
    /// Versions written by tasks (JSON tasks and streamed ones).
    public var taskVersions: Int
    /// Example rows listed by all of its ledger's batches.
    public var ledgerRows: Int
    public init(taskVersions: Int, ledgerRows: Int) {
        self.taskVersions = taskVersions
        self.ledgerRows = ledgerRows
    }
}

extension StoreOperations {
    /// Appends ledger rows (typically in the transaction that stores the new version).
    public func appendLedger(_ entries: [LedgerEntry], tenantID: String) throws {
        try withSession(writing: true) { session in
            for modelID in Set(entries.map(\.modelID)) { try session.requireModel(modelID, tenantID: tenantID) }
            for entry in entries {
                try session.connection.execute("""
                    INSERT INTO batch_ledger (id, model_id, version, task, epoch, batch_index, examples, windows, dataset_id, created_at)
                    VALUES (\(entry.id), \(entry.modelID), \(entry.version), \(entry.task), \(entry.epoch), \(entry.batchIndex),
                    \(entry.examples), \(try JSONColumn(entry.windows)), \(entry.datasetID), \(entry.createdAt))
                    """)
            }
        }
    }

    /// The model's ledger in training order, optionally only up to `throughVersion` and one task.
    public func ledgerEntries(modelID: String, tenantID: String, throughVersion: Int? = nil, task: Int? = nil) throws -> [LedgerEntry] {
        try withSession(writing: false) { session in
            var statement: SQL = """
                SELECT \(sql: ledgerColumns) FROM batch_ledger l JOIN models m ON m.id = l.model_id
                WHERE l.model_id = \(modelID) AND m.tenant_id = \(tenantID)
                """
            if let throughVersion { statement = statement + " AND l.version <= \(throughVersion)" }
            if let task { statement = statement + " AND l.task = \(task)" }
            statement = statement + " ORDER BY l.version, l.task, l.epoch, l.batch_index, l.id"
            return try session.connection.query(statement).map(LedgerEntry.init(row:))
        }
    }

    /// What the model's continual learning holds so far: its task versions, and the example rows
    /// its ledger lists in all (4 bytes each). The continual limits are counted on these.
    public func continualUsage(modelID: String, tenantID: String) throws -> ContinualUsage {
        try withStatementSession { session in
            let row = try session.connection.queryOne("""
                SELECT (SELECT COUNT(*) FROM model_versions v JOIN models m ON m.id = v.model_id
                        WHERE v.model_id = \(modelID) AND m.tenant_id = \(tenantID) AND v.reason = 'task') AS tasks,
                       (SELECT COALESCE(SUM(length(l.examples)), 0) FROM batch_ledger l JOIN models m ON m.id = l.model_id
                        WHERE l.model_id = \(modelID) AND m.tenant_id = \(tenantID)) AS bytes
                """)
            return ContinualUsage(taskVersions: try row?.int("tasks") ?? 0, ledgerRows: (try row?.int("bytes") ?? 0) / 4)
        }
    }

    /// One page of the model's ledger in training order, optionally one task only.
    public func ledgerPage(modelID: String, tenantID: String, task: Int? = nil, page: PageRequest) throws -> Page<LedgerEntry> {
        try withSession(writing: false) { session in
            try session.requireModel(modelID, tenantID: tenantID)
            var statement: SQL = "SELECT \(sql: ledgerColumns) FROM batch_ledger l WHERE l.model_id = \(modelID)"
            if let task { statement = statement + " AND l.task = \(task)" }
            return try session.page(statement + " ORDER BY l.version, l.task, l.epoch, l.batch_index, l.id", page, LedgerEntry.init(row:))
        }
    }

    /// Inserts or replaces component rows (key: model, version, block, column).
    public func upsertComponents(_ components: [Component], tenantID: String) throws {
        try withSession(writing: true) { session in
            for modelID in Set(components.map(\.modelID)) { try session.requireModel(modelID, tenantID: tenantID) }
            for component in components {
                try session.connection.execute("""
                    INSERT INTO components (model_id, version, block, column_index, provenance, state, norms)
                    VALUES (\(component.modelID), \(component.version), \(component.block), \(component.column),
                    \(component.provenance), \(component.state), \(component.norms))
                    ON CONFLICT (model_id, version, block, column_index) DO UPDATE SET
                    provenance = excluded.provenance, state = excluded.state, norms = excluded.norms
                    """)
            }
        }
    }

    /// A version's components by block then column, optionally one block only.
    public func components(modelID: String, version: Int, tenantID: String, block: Int? = nil) throws -> [Component] {
        try withSession(writing: false) { session in
            var statement: SQL = """
                SELECT \(sql: componentColumns) FROM components c JOIN models m ON m.id = c.model_id
                WHERE c.model_id = \(modelID) AND c.version = \(version) AND m.tenant_id = \(tenantID)
                """
            if let block { statement = statement + " AND c.block = \(block)" }
            return try session.connection.query(statement + " ORDER BY c.block, c.column_index").map(Component.init(row:))
        }
    }
}
