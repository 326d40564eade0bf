// VersionWriter: the one place a new model version is recorded. Train jobs, task jobs, streamed
// tasks and forgets hand it the new weights with what goes with them (metrics, ledger windows,
// component rows, provenance, a grown architecture, the job to complete, an audit row), and it
// commits all of it in one transaction: a failure anywhere leaves no version, no ledger row, no
// component row and the job unfinished.
import Foundation
import PFC
import Storage

/// Where a component's knowledge came from (the component row's provenance column).
struct ComponentProvenance: Codable, Sendable, Equatable {
    var jobID: String?
    var datasetID: String?
    /// The task whose window trained the column.
    var task: Int?
    /// The version whose forget reset the column.
    var forgottenByVersion: Int?
    enum CodingKeys: String, CodingKey {
        case task, jobID = "job_id", datasetID = "dataset_id", forgottenByVersion = "forgotten_by_version"
    }
}

/// Statistics of one component (the component row's norms column).
struct ComponentNorms: Codable, Sendable, Equatable {
    var meanActivation: Float
    enum CodingKeys: String, CodingKey { case meanActivation = "mean_activation" }
}

/// One trained batch for the ledger.
struct LedgerBatch: Sendable, Equatable {
    var task: Int
    var epoch: Int
    var batchIndex: Int
    /// Rows of `datasetID` (or of the stream, numbered from 0).
    var rows: [Int]
    /// The learnable window [c0, c1) of every PFC block while the batch trained.
    var windows: [Range<Int>]
    var datasetID: String?
}

/// The component rows a version gets.
enum ComponentRows: Sendable {
    /// None (kinds without basis columns).
    case none
    /// One row per block and column with its mean activation; columns in `trained` were learnable
    /// in this version's task (their provenance names the task); columns in `reset` that were not
    /// retrained stay reset.
    case measured(meanActivations: [[Float]], trained: Set<Int>, reset: Set<Int>, provenance: ComponentProvenance)
    /// Rows for the columns a forget zeroed, in each of `blocks` blocks, provenance the new version.
    case forgotten(columns: [Int], blocks: Int)
}

/// Everything one new model version consists of.
struct VersionCommit {
    var modelID: String
    var tenantID: String
    var parentVersion: Int
    var reason: VersionReason
    /// The new weights.
    var network: any Network
    var metrics: VersionMetrics
    var ledger: [LedgerBatch] = []
    var components: ComponentRows = .none
    /// The model's new shape, when a task grew K.
    var grownSpec: ModelSpec? = nil
    /// The job this version completes (its result is written in the same transaction).
    var job: (id: String, owner: String)? = nil
    /// The optimizer's statistics matching the new weights (train jobs), kept for a follow-on job.
    var optimizerState: OptimizerState? = nil
    /// Whether `parentVersion` must still be the model's latest when this commits (409 otherwise, and
    /// nothing is written). True for every change that continues the latest version: a task, a train
    /// job without `base_version`, a forget. Otherwise a task that ran beside a forget would write
    /// the forgotten weights back as the newest version, and two tasks would both be "task 3".
    var requiresLatestParent = true
    /// For a task: the limits its model's tasks and ledger rows are held to, counted again inside the
    /// transaction that writes them (`max_tasks_per_model`, `max_ledger_rows_per_model`), so two
    /// tasks admitted at once cannot both pass them.
    var continualLimits: ServiceLimits? = nil
    /// Extra rows of the same transaction, given the new version (a forget's audit).
    var extra: ((StoreSession, ModelVersion) throws -> Void)? = nil
}

/// Commits `VersionCommit`s.
struct VersionWriter {
    let store: any Store

    /// Records the version, its ledger, its component rows, the grown architecture, the job's
    /// completion and `extra` in one transaction, and returns the version.
    @discardableResult
    func commit(_ c: VersionCommit) throws -> ModelVersion {
        let weights = Data(ModelFile.encode(c.network))
        let metrics = try JSONColumn(c.metrics)
        let optimizer = try c.optimizerState.map { ($0.kind, try JSONEncoder().encode($0)) }
        return try store.transaction { s in
            let v = try s.appendModelVersion(modelID: c.modelID, tenantID: c.tenantID, parentVersion: c.parentVersion,
                                             reason: c.reason, metrics: metrics, weights: weights)
            // Versions are numbered max + 1 under the model's lock: anything but parent + 1 means a
            // version was written after the parent.
            if c.requiresLatestParent && v.version != c.parentVersion + 1 {
                throw APIError.conflict(Self.movedOn(reason: c.reason, parent: c.parentVersion, latest: v.version - 1))
            }
            if let (kind, state) = optimizer {
                try s.insert(StoredOptimizerState(modelID: c.modelID, version: v.version, kind: kind, state: state))
            }
            if !c.ledger.isEmpty {
                try s.appendLedger(c.ledger.map { b in
                    LedgerEntry(modelID: c.modelID, version: v.version, task: b.task, epoch: b.epoch, batchIndex: b.batchIndex,
                                examples: LedgerRows.encode(b.rows), windows: b.windows.map(ColumnRange.init), datasetID: b.datasetID)
                }, tenantID: c.tenantID)
            }
            if let limits = c.continualLimits, c.reason == .task {
                let rows = c.ledger.reduce(0) { $0 + $1.rows.count }
                try limits.checkContinual(try s.continualUsage(modelID: c.modelID, tenantID: c.tenantID), adding: rows, counted: true,
                                          what: "this task")
            }
            if let grown = c.grownSpec {
                try s.updateModelArchitecture(modelID: c.modelID, tenantID: c.tenantID,
                                              architecture: String(decoding: try JSONCoding.encoder.encode(grown), as: UTF8.self))
            }
            let rows = try Self.componentRows(c.components, modelID: c.modelID, version: v.version)
            if !rows.isEmpty { try s.upsertComponents(rows, tenantID: c.tenantID) }
            try c.extra?(s, v)
            if let job = c.job {
                try s.completeJob(id: job.id, owner: job.owner, result: try JSONColumn(TrainResult(modelVersion: v.version, metrics: c.metrics)))
            }
            return v
        }
    }

    /// Why a change was not stored: its parent is no longer the latest version.
    static func movedOn(reason: VersionReason, parent: Int, latest: Int) -> String {
        if reason == .forget { return Forgetter.movedOn(base: parent, latest: latest) }
        return "model changed while this \(reason.rawValue) ran: it started from version \(parent) but version \(latest) was written since "
            + "(a task, train or forget); nothing was stored, so that version's changes stand. Submit it again to build on the latest version"
    }

    static func componentRows(_ rows: ComponentRows, modelID: String, version: Int) throws -> [Component] {
        switch rows {
        case .none:
            return []
        case let .measured(means, trained, reset, provenance):
            var base = provenance
            base.task = nil
            let plain = try JSONColumn(base), taught = try JSONColumn(provenance)
            return try means.enumerated().flatMap { block, columns in
                try columns.enumerated().map { k, mean in
                    Component(modelID: modelID, version: version, block: block, column: k,
                              provenance: trained.contains(k) ? taught : plain,
                              state: reset.contains(k) && !trained.contains(k) ? .reset : .active,
                              norms: try JSONColumn(ComponentNorms(meanActivation: mean.isFinite ? mean : 0)))
                }
            }
        case let .forgotten(columns, blocks):
            let provenance = try JSONColumn(ComponentProvenance(forgottenByVersion: version))
            let norms = try JSONColumn(ComponentNorms(meanActivation: 0))
            return (0..<blocks).flatMap { b in
                columns.map { k in
                    Component(modelID: modelID, version: version, block: b, column: k, provenance: provenance, state: .reset, norms: norms)
                }
            }
        }
    }
}

extension JSONValue {
    /// A stored JSON column as a free-form value (for routes that show it as it is).
    static func parse(_ column: JSONColumn?) -> JSONValue? {
        guard let column else { return nil }
        return try? column.decode(JSONValue.self)
    }
}
