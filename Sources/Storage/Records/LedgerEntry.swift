// LedgerEntry and Component: what forgetting reads (which batch trained which columns).
import Foundation

/// One trained batch: where it came from and which basis columns were learnable meanwhile.
public struct LedgerEntry: Codable, Sendable, Equatable {
    public var id: String
    public var modelID: String
    /// The model version this training produced.
    public var version: Int
    public var task: Int
    public var epoch: Int
    public var batchIndex: Int
    /// The batch's example ids or range, encoded by the PFC ledger codec.
    public var examples: Data
    /// The learnable window [c0, c1) of every block (stored as `[[0,16],[0,16]]`).
    public var windows: [ColumnRange]
    public var datasetID: String?
    public var createdAt: Date

    /// A new ledger row with a fresh id.
    public init(id: String = StoreID.make(), modelID: String, version: Int, task: Int, epoch: Int, batchIndex: Int,
                examples: Data, windows: [ColumnRange], datasetID: String? = nil, createdAt: Date = StoreClock.now()) {
        self.id = id
        self.modelID = modelID
        self.version = version
        self.task = task
        self.epoch = epoch
        self.batchIndex = batchIndex
        self.examples = examples
        self.windows = windows
        self.datasetID = datasetID
        self.createdAt = createdAt
    }

    init(row: Row) throws {
        self.init(id: try row.string("id"), modelID: try row.string("model_id"), version: try row.int("version"),
                  task: try row.int("task"), epoch: try row.int("epoch"), batchIndex: try row.int("batch_index"),
                  examples: try row.data("examples"), windows: try row.json("windows").decode([ColumnRange].self),
                  datasetID: try row.optionalString("dataset_id"), createdAt: try row.date("created_at"))
    }
}

/// Whether a basis column still carries what it learned.
public enum ComponentState: String, Codable, Sendable, SQLBindable {
    case active, reset
}

/// Metadata of one basis column of one block in one model version.
public struct Component: Codable, Sendable, Equatable {
    public var modelID: String
    public var version: Int
    public var block: Int
    public var column: Int
    /// Provenance: the job, dataset and task that trained it, or the forget that reset it.
    public var provenance: JSONColumn
    public var state: ComponentState
    /// Statistics of the column (the service's typed norms).
    public var norms: JSONColumn

    /// A component record.
    public init(modelID: String, version: Int, block: Int, column: Int, provenance: JSONColumn,
                state: ComponentState = .active, norms: JSONColumn = .emptyObject) {
        self.modelID = modelID
        self.version = version
        self.block = block
        self.column = column
        self.provenance = provenance
        self.state = state
        self.norms = norms
    }

    init(row: Row) throws {
        self.init(modelID: try row.string("model_id"), version: try row.int("version"), block: try row.int("block"),
                  column: try row.int("column_index"), provenance: try row.json("provenance"),
                  state: try row.decode("state", as: ComponentState.self), norms: try row.json("norms"))
    }
}
