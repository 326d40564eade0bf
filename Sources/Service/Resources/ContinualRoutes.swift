// ContinualRoutes: task increments with the Sliding Learnable Window, the batch ledger, and
// forgetting chosen batches by zeroing the columns they trained (research/pfc.md §3–4).
import Foundation
import HTTP
import Linalg
import PFC
import Storage

extension PFCService {
    func registerContinual(_ r: inout Router) {
        let limits = configuration.limits
        r.post("/v1/models/{id}/tasks") { [self] request, ctx in
            let tenant = try ctx.tenantID(), id = try request.pathParameter("id")
            let body = try JSONCoding.decode(TaskRequest.self, from: request, maxBytes: limits.maxRequestBytes)
            let job = try enqueueTask(body, modelID: id, tenantID: tenant)
            return try JSONCoding.response(JobDTO(job: job), status: .accepted, headers: [("Location", "/v1/jobs/\(job.id)")])
        }
        r.get("/v1/models/{id}/tasks") { [store] request, ctx in
            let tenant = try ctx.tenantID(), id = try request.pathParameter("id"), page = try Pagination(request)
            let versions = try storeCall {
                try store.modelVersions(modelID: id, tenantID: tenant, reason: .task, page: PageRequest(limit: page.limit, offset: page.offset))
            }
            let tasks = versions.items.compactMap { v -> TaskDTO? in
                let m = VersionMetrics(column: v.metrics)
                guard let n = m.task else { return nil }
                return TaskDTO(task: n, name: m.taskName ?? "", modelVersion: v.version, datasetID: m.datasetID, columns: m.windowColumns,
                               grewBy: m.grewBy ?? 0, metrics: m)
            }
            return try JSONCoding.response(ListPage(items: tasks, nextOffset: versions.nextOffset))
        }
        r.get("/v1/models/{id}/tasks/metrics") { [store] request, ctx in
            let tenant = try ctx.tenantID(), id = try request.pathParameter("id")
            let versions = try storeCall { () -> [ModelVersion] in
                var all: [ModelVersion] = []
                var offset = 0
                while true {
                    let page = try store.modelVersions(modelID: id, tenantID: tenant, reason: .task, page: PageRequest(limit: 1000, offset: offset))
                    all += page.items
                    guard let next = page.nextOffset else { return all }
                    offset = next
                }
            }
            guard let metrics = TaskMetricsDTO(taskVersions: versions) else { throw APIError.notFound("tasks of model \(id)") }
            return try JSONCoding.response(metrics)
        }
        r.get("/v1/models/{id}/ledger") { [store] request, ctx in
            let tenant = try ctx.tenantID(), id = try request.pathParameter("id"), page = try Pagination(request)
            let task = try request.queryValue("task").map { t -> Int in
                guard let n = Int(t), n >= 1 else { throw APIError.badRequest(Self.taskNumberRule) }
                return n
            }
            let entries = try storeCall {
                try store.ledgerPage(modelID: id, tenantID: tenant, task: task, page: PageRequest(limit: page.limit, offset: page.offset))
            }
            return try JSONCoding.response(ListPage(items: entries.items.map(LedgerEntryDTO.init), nextOffset: entries.nextOffset))
        }
        r.get("/v1/models/{id}/forgets") { [store] request, ctx in
            let tenant = try ctx.tenantID(), id = try request.pathParameter("id"), page = try Pagination(request)
            let audits = try storeCall {
                try store.read { s -> Page<ForgetAudit> in
                    let found = try s.forgetAudits(modelID: id, tenantID: tenant, page: PageRequest(limit: page.limit, offset: page.offset))
                    // Audits outlive their model; an id that never had either is unknown.
                    if found.items.isEmpty && page.offset == 0 { _ = try s.model(id: id, tenantID: tenant) }
                    return found
                }
            }
            return try JSONCoding.response(ListPage(items: audits.items.map(ForgetAuditDTO.init), nextOffset: audits.nextOffset))
        }
        r.post("/v1/models/{id}/forget") { [self] request, ctx in
            let tenant = try ctx.tenantID(), id = try request.pathParameter("id")
            let body = try JSONCoding.decode(ForgetRequest.self, from: request, maxBytes: limits.maxRequestBytes)
            return try JSONCoding.response(try forget(body, modelID: id, tenantID: tenant))
        }
    }

    /// Validates a task against the model, its window position and capacity, and queues it.
    func enqueueTask(_ body: TaskRequest, modelID: String, tenantID: String) throws -> Job {
        try quotas.admitJob(tenantID: tenantID)
        let (model, dataset, latest) = try storeCall {
            try store.read { s in
                (try s.model(id: modelID, tenantID: tenantID), try s.dataset(id: body.datasetID, tenantID: tenantID),
                 try s.latestModelVersion(modelID: modelID, tenantID: tenantID))
            }
        }
        let arch = try spec(of: model).architecture
        guard arch.kind.blockCount > 0 else { throw APIError.invalid("the sliding window trains PFC basis columns; a \(arch.kind.rawValue) model has none") }
        let params = try body.jobParams(limits: configuration.limits, start: ContinualState(metrics: latest.metrics).nextWindowStart)
        let options = params.options
        try checkDataset(dataset, against: arch, tenantID: tenantID)
        // Issue 17: the evaluation sets of the accuracy matrix, one per task so far with this one.
        let number = ContinualState(metrics: latest.metrics).tasks + 1
        if let list = body.evaluateOn, list.count != number {
            throw APIError.invalid("evaluate_on must name \(number) datasets, one per task so far including this one (task \(number)); it names \(list.count)")
        }
        for evalID in Set((body.evaluateOn ?? []) + [body.evaluationDatasetID].compactMap { $0 }) {
            let ds = try storeCall { try store.dataset(id: evalID, tenantID: tenantID) }
            do { try checkDataset(ds, against: arch, tenantID: tenantID) } catch let e as HTTPError where e.status == .unprocessableContent {
                throw APIError.invalid("evaluation dataset: \(e.message)")
            }
        }
        let (_, network) = try loadNetwork(modelID: modelID, tenantID: tenantID, version: latest.version)
        let trainer = Trainer(options: options)
        if let need = trainer.requiredBasis(trainingExamples: trainer.trainingExamples(fromDataSetOf: dataset.examples)),
           need > network.architecture.basis, body.grow {
            try configuration.limits.checkBasis(need, of: network.architecture, action: "growing for this task")
        } else if let need = trainer.requiredBasis(trainingExamples: trainer.trainingExamples(fromDataSetOf: dataset.examples)),
           need > network.architecture.basis {
            throw APIError.invalid("this task's window would run to column \(need) but the model has K = \(network.architecture.basis) "
                + "basis columns: it needs K = \(need); send \"grow\": true to append \(need - network.architecture.basis) fresh columns")
        }
        let job = try Job(tenantID: tenantID, modelID: modelID, params: .task(params))
        try storeCall { try store.transaction { s in try quotas.admitJob(tenantID: tenantID, in: s); try s.enqueue(job) } }
        workers.wake()
        return job
    }

    /// The one rule for task numbers in queries and bodies.
    static let taskNumberRule = "task must be a positive integer: tasks count from 1 (the first POST /v1/models/{id}/tasks is task 1)"

    /// 409 for a forget on a model with no ledger: only batches trained as tasks (with the sliding
    /// window) are recorded and can be forgotten.
    static let nothingToForget = "this model has no trained batches to forget: only batches trained by POST /v1/models/{id}/tasks "
        + "(or tasks/stream) are recorded in its ledger with the columns they trained; a model trained with /train has none. "
        + "Train it as tasks to be able to forget them."

    /// Zeroes the columns that were learnable while the selected batches trained, in every matrix
    /// of every block (research/pfc.md §4), as a new version plus audit record in one transaction.
    func forget(_ body: ForgetRequest, modelID: String, tenantID: String) throws -> ForgetResponse {
        let selectors = [body.batches != nil, body.task != nil, body.datasetID != nil, body.examples != nil].filter { $0 }.count
        guard selectors == 1 else { throw APIError.invalid("give exactly one of batches, task, dataset_id or examples") }
        if let task = body.task, task < 1 { throw APIError.invalid(Self.taskNumberRule) }
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
            for e in body.examples! { wanted[e.datasetID, default: []].formUnion(e.rows) }
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
        let (_, network) = try loadNetwork(modelID: modelID, tenantID: tenantID, version: latest.version)
        let toReset = columns.subtracting(previouslyReset).sorted()
        let result: ForgettingResult
        do { result = try Forgetting.zeroColumns(toReset.map { $0..<($0 + 1) }, of: network) } catch {
            throw APIError.invalid("cannot reset those columns: \(error)")
        }
        let selectedIDs = Set(selected.map(\.id))
        let collateral = entries.filter { e in
            !selectedIDs.contains(e.id) && e.windows.contains { r in r.range.contains { columns.contains($0) } }
        }.map(\.id)
        var before: Float? = nil, after: Float? = nil
        if let evalID = body.evaluateOn {
            let ds = try storeCall { try store.dataset(id: evalID, tenantID: tenantID) }
            // Two forward passes over the whole dataset run on this request's thread.
            try configuration.limits.checkInference(rows: CheckedSize.product(2, ds.examples) ?? Int.max, of: network.architecture,
                                                    what: "evaluate_on (two passes)")
            let data = try storeCall { try DatasetBlobReader.load(from: store, dataset: ds, tenantID: tenantID, classes: network.architecture.outputDim) }
            guard data.featureCount == network.architecture.featureCount, data.classes <= network.architecture.outputDim,
                  data.labelsPerExample == 1 else {
                throw APIError.invalid("evaluate_on dataset \(evalID) does not fit the model's input_dim and classes, or is labelled per step")
            }
            before = Trainer.evaluate(network, on: data).accuracy
            after = Trainer.evaluate(result.network, on: data).accuracy
        }
        let verification = try body.referenceDatasetID.map { try verify(selected: selected, all: entries, reference: $0, before: network,
                                                                        after: result.network, tenantID: tenantID) }
        let dryRun = body.dryRun ?? false
        let alreadyReset = columns.intersection(previouslyReset).union(result.alreadyReset).sorted()
        var response = ForgetResponse(modelVersion: latest.version, versionCreated: false, dryRun: dryRun,
                                      batches: selected.map(\.id), columnsReset: toReset, alreadyReset: alreadyReset,
                                      collateralBatches: collateral, accuracyBefore: before, accuracyAfter: after,
                                      verification: verification)
        guard !dryRun, !toReset.isEmpty else { return response }

        var newState = state
        newState.resetColumns = previouslyReset.union(toReset).sorted()
        var metrics = newState.versionMetrics
        metrics.forget = ForgetRecord(tenantID: tenantID, at: ISO8601DateFormatter().string(from: Date()),
                                      request: .init(batches: selected.map(\.id), task: body.task, datasetID: body.datasetID),
                                      columns: toReset)
        if let before, let after { metrics.accuracyBefore = Double(before); metrics.accuracyAfter = Double(after) }
        func text(_ v: JSONValue) throws -> String { String(decoding: try JSONCoding.encoder.encode(v), as: UTF8.self) }
        let auditRequest = try text(body.auditJSON)
        let auditBatches = try text(.array(selected.map { .string($0.id) }))
        let auditColumns = try text(.array(toReset.map { .number(Double($0)) }))
        let auditVerification = try verification.map { String(decoding: try JSONCoding.encoder.encode($0), as: UTF8.self) }
        var auditID = ""
        let version = try storeCall {
            try VersionWriter(store: store).commit(VersionCommit(
                modelID: modelID, tenantID: tenantID, parentVersion: latest.version, reason: .forget, network: result.network,
                metrics: metrics, components: .forgotten(columns: toReset, blocks: network.architecture.kind.blockCount),
                extra: { s, v in
                    let audit = ForgetAudit(tenantID: tenantID, modelID: modelID, version: v.version, request: auditRequest,
                                            batches: auditBatches, columnsReset: auditColumns,
                                            accuracyBefore: before.map(Double.init), accuracyAfter: after.map(Double.init),
                                            verification: auditVerification)
                    try s.insert(audit)
                    auditID = audit.id
                })).version
        }
        response.modelVersion = version
        response.versionCreated = true
        response.auditID = auditID
        return response
    }

    /// The membership-inference verification of a forget (issue 17): the forgotten examples (the
    /// distinct rows of the selected batches), the rest (the other batches' rows, the forgotten ones
    /// excluded) and the held-out `reference` set, scored by the model before and after the reset.
    /// Runs on the request's thread: its forward passes are held to `max_predict_work`.
    func verify(selected: [LedgerEntry], all entries: [LedgerEntry], reference: String, before: any Network, after: any Network,
                tenantID: String) throws -> ForgetVerificationDTO {
        let arch = before.architecture
        let refSet = try storeCall { try store.dataset(id: reference, tenantID: tenantID) }
        do { try checkDataset(refSet, against: arch, tenantID: tenantID) } catch let e as HTTPError where e.status == .unprocessableContent {
            throw APIError.invalid("reference_dataset_id: \(e.message)")
        }
        guard refSet.examples > 0 else { throw APIError.invalid("reference_dataset_id \(reference) holds no examples") }
        func rows(_ list: [LedgerEntry]) -> [String: Set<Int>] {
            var out: [String: Set<Int>] = [:]
            for e in list { if let ds = e.datasetID { out[ds, default: []].formUnion(LedgerRows.decode(e.examples)) } }
            return out
        }
        let selectedIDs = Set(selected.map(\.id))
        let forgotten = rows(selected)
        var rest = rows(entries.filter { !selectedIDs.contains($0.id) })
        for (ds, r) in forgotten { rest[ds]?.subtract(r) }
        let counts = (forgotten.values.reduce(0) { $0 + $1.count }, rest.values.reduce(0) { $0 + $1.count })
        // Two passes (before and after) over the three sets.
        let total = CheckedSize.product(2, CheckedSize.sum(counts.0, counts.1, refSet.examples) ?? Int.max) ?? Int.max
        try configuration.limits.checkInference(rows: total, of: arch, what: "reference_dataset_id's verification (two passes over the forgotten, other and reference examples)")
        var loaded: [String: LabeledDataset] = [:]
        func data(_ id: String) throws -> LabeledDataset? {
            if let d = loaded[id] { return d }
            guard let ds = try? storeCall({ try store.dataset(id: id, tenantID: tenantID) }) else { return nil }  // deleted since it trained
            let d = try storeCall { try DatasetBlobReader.load(from: store, dataset: ds, tenantID: tenantID, classes: arch.outputDim) }
            guard d.featureCount == arch.featureCount, d.classes <= arch.outputDim, d.labelsPerExample == 1 else { return nil }
            loaded[id] = d
            return d
        }
        func gather(_ byDataset: [String: Set<Int>]) throws -> LabeledDataset {
            var parts: [LabeledDataset] = []
            for (id, r) in byDataset.sorted(by: { $0.key < $1.key }) {
                guard let d = try data(id) else { continue }
                parts.append(d.subset(r.filter { $0 >= 0 && $0 < d.count }.sorted()))
            }
            var features: [Float] = [], labels: [Int] = []
            for p in parts { features += p.features.storage; labels += p.labels }
            return LabeledDataset(features: Matrix(rows: labels.count, cols: arch.featureCount, storage: features), labels: labels,
                                  classes: arch.outputDim)
        }
        let forgottenData = try gather(forgotten), restData = try gather(rest)
        guard let referenceData = try data(reference) else { throw APIError.invalid("reference_dataset_id \(reference) does not fit the model") }
        return ForgetVerificationDTO(
            referenceDatasetID: reference, forgottenExamples: forgottenData.count, restExamples: restData.count,
            referenceExamples: referenceData.count,
            before: MembershipInference.check(before, forgotten: forgottenData, rest: restData, reference: referenceData),
            after: MembershipInference.check(after, forgotten: forgottenData, rest: restData, reference: referenceData))
    }

    /// 422 when a dataset does not fit a model (width, sequence form, classes, per-step labels, sign
    /// of the features). Per-step labels are accepted only where `perStepLabels` (training a
    /// recurrent model).
    func checkDataset(_ dataset: Dataset, against arch: Architecture, tenantID: String, perStepLabels: Bool = false) throws {
        if arch.kind.isSequence, let t = dataset.sequenceLength, let d = dataset.stepFeatures,
           t != arch.sequenceLength || d != arch.inputDim {
            throw APIError.invalid("dataset \(dataset.id) holds sequences of \(t) steps × \(d) features but the model reads "
                + "sequence_length \(arch.sequenceLength) × input_dim \(arch.inputDim)")
        }
        if dataset.labelsPerExample > 1 {
            guard arch.kind.isSequence else {
                throw APIError.invalid("dataset \(dataset.id) is labelled per step; only the recurrent kinds (factorized_rnn, rnn) learn per-step labels")
            }
            guard perStepLabels else { throw APIError.invalid("dataset \(dataset.id) is labelled per step; this operation needs one label per example") }
        }
        if dataset.features != arch.featureCount {
            let want = arch.kind.isSequence ? "sequence_length × input_dim = \(arch.featureCount)" : "input_dim is \(arch.inputDim)"
            throw APIError.invalid("dataset \(dataset.id) has \(dataset.features) features but the model's \(want)")
        }
        if dataset.classes > arch.outputDim {
            throw APIError.invalid("dataset \(dataset.id) has labels up to \(dataset.classes - 1) but the model has \(arch.outputDim) classes")
        }
        // The stored minimum answers at once; older datasets without one (and the refusal, which names
        // the first negative row and column) read the blob.
        if arch.nonnegative && (dataset.minFeature.map { $0 < 0 } ?? true) {
            let data = try storeCall { try DatasetBlobReader.load(from: store, dataset: dataset, tenantID: tenantID, classes: arch.outputDim) }
            if let i = data.features.storage.firstIndex(where: { $0 < 0 }) {
                throw APIError.invalid("dataset \(dataset.id) row \(i / data.featureCount + 1), column \(i % data.featureCount + 1) "
                    + "has a negative feature; this model is non-negative (PFC needs features ≥ 0)")
            }
        }
    }
}
