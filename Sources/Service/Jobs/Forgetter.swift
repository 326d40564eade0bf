// Forgetter: `POST /v1/models/{id}/forget` (research/pfc.md §4) in two steps, shared by the route and
// the `forget` job. `plan` validates the request and resolves the selected ledger batches, the columns
// they trained and the datasets to measure against the model's latest version: ledger reads and one
// network load, short work for the request thread. `run` measures (evaluate_on's accuracy, and
// reference_dataset_id's membership-inference check: forward passes over whole datasets, before and
// after the reset) and writes the new version with its audit record in one transaction.
//
// The route answers at once only when those passes cost at most `maxInlineEvaluationWork`
// multiply-adds (and the request did not ask for "async": true); otherwise the same plan runs as a
// `forget` job on the workers (ForgetRunner), so a handler thread never waits on the passes.
import Foundation
import HTTP
import Linalg
import PFC
import Storage

/// A validated forget, resolved against one version of the model.
struct ForgetPlan {
    var body: ForgetRequest
    var modelID: String
    var tenantID: String
    /// The version the reset applies to (the latest when planned); the new version's parent.
    var baseVersion: Int
    var state: ContinualState
    var network: any Network
    var selected: [LedgerEntry]
    /// Columns still to zero (those the selection trained that no earlier forget reset).
    var toReset: [Int]
    var alreadyReset: [Int]
    var result: ForgettingResult
    var collateral: [String]
    /// `evaluate_on`'s dataset.
    var evaluation: Dataset?
    /// `reference_dataset_id`'s dataset, and the distinct training rows of the forgotten and the other batches.
    var reference: Dataset?
    var forgottenRows: [String: Set<Int>] = [:]
    var restRows: [String: Set<Int>] = [:]

    /// Rows of every forward pass `run` makes: two (before and after) over each measured set.
    var passRows: Int {
        var rows = 0
        if let evaluation { rows = CheckedSize.sum(rows, evaluation.examples) ?? Int.max }
        if let reference {
            let counts = forgottenRows.values.reduce(0) { $0 + $1.count } + restRows.values.reduce(0) { $0 + $1.count }
            rows = CheckedSize.sum(rows, counts, reference.examples) ?? Int.max
        }
        return CheckedSize.product(2, rows) ?? Int.max
    }

    /// Multiply-adds of those passes (nil: beyond Int).
    var work: Int? { network.architecture.inferenceWork(rows: passRows) }

    /// The dataset a queued forget job keeps on its row (so it cannot be deleted meanwhile).
    var keptDatasetID: String? { reference?.id ?? evaluation?.id }
}

/// Plans and runs forgets against one store.
struct Forgetter {
    let store: any Store
    let models: ModelLoader
    /// `maxWorkingMemory` bounds the datasets one forget holds loaded at once, all together.
    let limits: ServiceLimits

    /// 409 for a forget on a model with no ledger: only batches trained as tasks (with the sliding
    /// window) are recorded and can be forgotten.
    static let nothingToForget = "this model has no trained batches to forget: only batches trained by POST /v1/models/{id}/tasks "
        + "(or tasks/stream) are recorded in its ledger with the columns they trained; a model trained with /train has none. "
        + "Train it as tasks to be able to forget them."

    /// Validates `body` and resolves it against the model's latest version. Every client error (an
    /// unknown batch, task or dataset; a dataset that does not fit) is thrown here, before anything runs.
    func plan(_ body: ForgetRequest, modelID: String, tenantID: String) throws -> ForgetPlan {
        let selectors = [body.batches != nil, body.task != nil, body.datasetID != nil, body.examples != nil].filter { $0 }.count
        guard selectors == 1 else { throw APIError.invalid("give exactly one of batches, task, dataset_id or examples") }
        if let task = body.task, task < 1 { throw APIError.invalid(PFCService.taskNumberRule) }
        let (latest, entries) = try storeCall {
            try store.read { s in
                _ = try s.model(id: modelID, tenantID: tenantID)
                return (try s.latestModelVersion(modelID: modelID, tenantID: tenantID), try s.ledgerEntries(modelID: modelID, tenantID: tenantID))
            }
        }
        if entries.isEmpty { throw APIError.conflict(Self.nothingToForget) }

        let selected: [LedgerEntry]
        if let ids = body.batches {
            let known = Set(entries.map(\.id))
            if let unknown = ids.first(where: { !known.contains($0) }) { throw APIError.notFound("ledger batch \(unknown)") }
            let wanted = Set(ids)
            selected = entries.filter { wanted.contains($0.id) }
        } else if let task = body.task {
            selected = entries.filter { $0.task == task }
            if selected.isEmpty { throw APIError.notFound("task \(task)") }
        } else if let ds = body.datasetID {
            selected = entries.filter { $0.datasetID == ds }
            if selected.isEmpty { throw APIError.notFound("trained batches of dataset \(ds)") }
        } else {
            var wanted: [String: Set<Int>] = [:]
            for e in body.examples ?? [] { wanted[e.datasetID, default: []].formUnion(e.rows) }
            selected = entries.filter { e in
                guard let ds = e.datasetID, let rows = wanted[ds] else { return false }
                return LedgerRows.decode(e.examples).contains(where: rows.contains)
            }
            if selected.isEmpty { throw APIError.notFound("trained batches containing those examples") }
        }
        let ranges = selected.flatMap { $0.windows.map(\.range) }
        let columns = Set(Forgetting.columns(of: ranges))
        let state = ContinualState(metrics: latest.metrics)
        let previouslyReset = Set(state.resetColumns)
        let (_, network) = try models.network(modelID: modelID, tenantID: tenantID, version: latest.version)
        guard network.architecture.kind.blockCount > 0 else {
            throw APIError.conflict("a \(network.architecture.kind.rawValue) model has no basis columns: forgetting zeroes the columns of "
                + "PFC blocks that trained the batches, so it needs a PFC model (kind pfc or pfc2)")
        }
        let toReset = columns.subtracting(previouslyReset).sorted()
        let result: ForgettingResult
        do { result = try Forgetting.zeroColumns(toReset.map { $0..<($0 + 1) }, of: network) } catch {
            throw APIError.invalid("cannot reset those columns: \(error)")
        }
        let selectedIDs = Set(selected.map(\.id))
        let collateral = entries.filter { e in
            !selectedIDs.contains(e.id) && e.windows.contains { r in r.range.contains { columns.contains($0) } }
        }.map(\.id)
        var plan = ForgetPlan(body: body, modelID: modelID, tenantID: tenantID, baseVersion: latest.version, state: state, network: network,
                              selected: selected, toReset: toReset,
                              alreadyReset: columns.intersection(previouslyReset).union(result.alreadyReset).sorted(),
                              result: result, collateral: collateral)
        let arch = network.architecture
        if let evalID = body.evaluateOn {
            let ds = try storeCall { try store.dataset(id: evalID, tenantID: tenantID) }
            guard ds.features == arch.featureCount, ds.classes <= arch.outputDim, ds.labelsPerExample == 1 else {
                throw APIError.invalid("evaluate_on dataset \(evalID) does not fit the model's input_dim and classes, or is labelled per step")
            }
            plan.evaluation = ds
        }
        if let reference = body.referenceDatasetID {
            let refSet = try storeCall { try store.dataset(id: reference, tenantID: tenantID) }
            do { try PFCService.checkDataset(refSet, against: arch, tenantID: tenantID, store: store, limits: limits) } catch let e as HTTPError where e.status == .unprocessableContent {
                throw APIError.invalid("reference_dataset_id: \(e.message)")
            }
            guard refSet.examples > 0 else { throw APIError.invalid("reference_dataset_id \(reference) holds no examples") }
            func rows(_ list: [LedgerEntry]) -> [String: Set<Int>] {
                var out: [String: Set<Int>] = [:]
                for e in list { if let ds = e.datasetID { out[ds, default: []].formUnion(LedgerRows.decode(e.examples)) } }
                return out
            }
            plan.reference = refSet
            plan.forgottenRows = rows(selected)
            plan.restRows = rows(entries.filter { !selectedIDs.contains($0.id) })
            for (ds, r) in plan.forgottenRows { plan.restRows[ds]?.subtract(r) }
        }
        return plan
    }

    /// Measures the plan and, unless it is a dry run or nothing is left to reset, writes the new
    /// version and its audit (with `job`'s completion, when it runs as one) in one transaction.
    /// `tick(rows)` is called after every chunk of a forward pass and may throw to stop (`EvaluationStop`).
    /// 409 when another version was written after the plan's base: the reset would drop it.
    func run(_ plan: ForgetPlan, job: (id: String, owner: String)? = nil, tick: (Int) throws -> Void = { _ in }) throws -> ForgetResponse {
        let body = plan.body, network = plan.network, arch = network.architecture
        var before: Float? = nil, after: Float? = nil
        var loaded: [String: LabeledDataset] = [:]  // each dataset read once (evaluate_on may be a trained or the reference set)
        if let ds = plan.evaluation {
            let data = try load(ds, beside: loaded, plan: plan)
            loaded[ds.id] = data
            before = try Self.accuracy(network, on: data, tick: tick)
            after = try Self.accuracy(plan.result.network, on: data, tick: tick)
        }
        let verification = try plan.reference.map { try verify(plan, reference: $0, loaded: &loaded, tick: tick) }
        let dryRun = body.dryRun ?? false
        var response = ForgetResponse(modelVersion: plan.baseVersion, versionCreated: false, dryRun: dryRun,
                                      batches: plan.selected.map(\.id), columnsReset: plan.toReset, alreadyReset: plan.alreadyReset,
                                      collateralBatches: plan.collateral, accuracyBefore: before, accuracyAfter: after,
                                      verification: verification)
        guard !dryRun, !plan.toReset.isEmpty else {
            if let job { try storeCall { try store.completeJob(id: job.id, owner: job.owner, result: try JSONColumn(response)) } }
            return response
        }

        var newState = plan.state
        newState.resetColumns = Set(plan.state.resetColumns).union(plan.toReset).sorted()
        var metrics = newState.versionMetrics
        metrics.forget = ForgetRecord(tenantID: plan.tenantID, at: ISO8601DateFormatter().string(from: Date()),
                                      request: .init(batches: plan.selected.map(\.id), task: body.task, datasetID: body.datasetID),
                                      columns: plan.toReset)
        if let before, let after { metrics.accuracyBefore = Double(before); metrics.accuracyAfter = Double(after) }
        func text(_ v: JSONValue) throws -> String { String(decoding: try JSONCoding.encoder.encode(v), as: UTF8.self) }
        let auditRequest = try text(body.auditJSON)
        let auditBatches = try text(.array(plan.selected.map { .string($0.id) }))
        let auditColumns = try text(.array(plan.toReset.map { .number(Double($0)) }))
        let auditVerification = try verification.map { String(decoding: try JSONCoding.encoder.encode($0), as: UTF8.self) }
        let auditID = StoreID.make()
        response.auditID = auditID
        let base = plan.baseVersion
        try storeCall {
            try VersionWriter(store: store).commit(VersionCommit(
                modelID: plan.modelID, tenantID: plan.tenantID, parentVersion: base, reason: .forget, network: plan.result.network,
                metrics: metrics, components: .forgotten(columns: plan.toReset, blocks: arch.kind.blockCount),
                extra: { s, v in
                    let audit = ForgetAudit(id: auditID, tenantID: plan.tenantID, modelID: plan.modelID, version: v.version, request: auditRequest,
                                            batches: auditBatches, columnsReset: auditColumns,
                                            accuracyBefore: before.map(Double.init), accuracyAfter: after.map(Double.init),
                                            verification: auditVerification)
                    try s.insert(audit)
                    response.modelVersion = v.version
                    response.versionCreated = true
                    if let job { try s.completeJob(id: job.id, owner: job.owner, result: try JSONColumn(response)) }
                }))
        }
        return response
    }

    /// Loads `ds` whole, held to `max_working_memory` together with the datasets already `loaded`
    /// (a forget keeps each dataset it reads: evaluate_on may be a trained or the reference set).
    func load(_ ds: Dataset, beside loaded: [String: LabeledDataset], plan: ForgetPlan) throws -> LabeledDataset {
        let bytes = try limits.checkDatasetLoad(ds, split: false, what: "this forget")
        let held = loaded.values.reduce(0) { $0 + $1.heldBytes }
        guard held + bytes <= limits.maxWorkingMemory else {
            throw APIError.invalid("this forget reads \(loaded.count + 1) datasets, about \(sizeText(held + bytes)) loaded together; "
                + "the limit max_working_memory is \(sizeText(limits.maxWorkingMemory))")
        }
        return try storeCall {
            try DatasetBlobReader.load(from: store, dataset: ds, tenantID: plan.tenantID, classes: plan.network.architecture.outputDim, limits: limits)
        }
    }

    /// The 409 message when the model moved on between the plan and its commit.
    static func movedOn(base: Int, latest: Int) -> String {
        "model changed while this forget ran: it was planned on version \(base) but version \(latest) was written since "
            + "(a task or another forget); nothing was reset. Send the forget again to apply it to the latest version"
    }

    /// Accuracy of `network` on `data`, counted as evaluations are (ModelEvaluator's chunks).
    static func accuracy(_ network: any Network, on data: LabeledDataset, tick: (Int) throws -> Void) throws -> Float {
        var evaluator = ModelEvaluator(network: network, data: data)
        var done = 0
        do {
            try evaluator.run { now throws in try tick(now - done); done = now }
        } catch EvaluationStop.notFinite {
            // A diverged model scores its non-finite rows as wrong, as Trainer.evaluate does.
            return Float(try MembershipInference.losses(network, data).correct) / Float(max(1, data.count))
        }
        return Float(evaluator.result(modelID: "", version: 0, datasetID: "", jobID: nil).accuracy)
    }

    /// The membership-inference verification (issue 17): the forgotten examples (the distinct rows of
    /// the selected batches), the rest (the other batches' rows, the forgotten ones excluded) and the
    /// held-out reference set, scored by the model before and after the reset.
    func verify(_ plan: ForgetPlan, reference refSet: Dataset, loaded: inout [String: LabeledDataset],
                tick: (Int) throws -> Void) throws -> ForgetVerificationDTO {
        let arch = plan.network.architecture
        func data(_ id: String) throws -> LabeledDataset? {
            if let d = loaded[id] {
                return d.featureCount == arch.featureCount && d.classes <= arch.outputDim && d.labelsPerExample == 1 ? d : nil
            }
            guard let ds = try? storeCall({ try store.dataset(id: id, tenantID: plan.tenantID) }) else { return nil }  // deleted since it trained
            let d = try load(ds, beside: loaded, plan: plan)
            guard d.featureCount == arch.featureCount, d.classes <= arch.outputDim, d.labelsPerExample == 1 else { return nil }
            loaded[id] = d
            return d
        }
        func gather(_ byDataset: [String: Set<Int>]) throws -> LabeledDataset {
            var features: [Float] = [], labels: [Int] = []
            for (id, r) in byDataset.sorted(by: { $0.key < $1.key }) {
                guard let d = try data(id) else { continue }
                let p = d.subset(r.filter { $0 >= 0 && $0 < d.count }.sorted())
                features += p.features.storage
                labels += p.labels
            }
            return LabeledDataset(features: Matrix(rows: labels.count, cols: arch.featureCount, storage: features), labels: labels,
                                  classes: arch.outputDim)
        }
        let forgottenData = try gather(plan.forgottenRows), restData = try gather(plan.restRows)
        guard let referenceData = try data(refSet.id) else {
            throw APIError.invalid("reference_dataset_id \(refSet.id) does not fit the model")
        }
        return ForgetVerificationDTO(
            referenceDatasetID: refSet.id, forgottenExamples: forgottenData.count, restExamples: restData.count,
            referenceExamples: referenceData.count,
            before: try MembershipInference.check(plan.network, forgotten: forgottenData, rest: restData, reference: referenceData, tick: tick),
            after: try MembershipInference.check(plan.result.network, forgotten: forgottenData, rest: restData, reference: referenceData, tick: tick))
    }
}
