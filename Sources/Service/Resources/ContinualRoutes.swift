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
            // Bounded by bytes too: an entry lists up to batch_size (100000) example rows.
            let entries = try storeCall {
                try BoundedPage.read(limit: page.limit, offset: page.offset, size: { 2 * $0.examples.count }) { p in
                    try store.ledgerPage(modelID: id, tenantID: tenant, task: task, page: p)
                }
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
            let forgetter = Forgetter(store: store, models: models, limits: limits)
            // Measurements small enough answer at once; the rest (or "async": true) run as a forget job,
            // and so does a forget sent while the model's train, task or forget jobs are queued or
            // running (counted before the plan reads the model): it waits its turn and applies to the
            // version they leave. A dry run writes nothing and answers on the latest version.
            let ahead = try storeCall {
                try store.activeJobs(modelID: id, tenantID: tenant, kinds: JobKind.oneAtATimePerModel.map(\.rawValue)).count
            }
            let plan = try forgetter.plan(body, modelID: id, tenantID: tenant)
            if body.async != true, ahead == 0 || body.dryRun == true, let work = plan.work, work <= limits.maxInlineEvaluationWork {
                let token = ctx.computeToken
                do {
                    let response = try ComputeCancellation.run(token) {
                        try forgetter.run(plan) { _ throws in if token.isCancelled { throw EvaluationStop.cancelled } }
                    }
                    return try JSONCoding.response(response)
                } catch EvaluationStop.cancelled {
                    throw requestAbandoned()
                }
            }
            try quotas.admitJob(tenantID: tenant)
            let job = try Job(tenantID: tenant, modelID: id, params: .forget(ForgetJobParams(request: body, baseVersion: plan.baseVersion),
                                                                           datasetID: plan.keptDatasetID))
            try storeCall { try store.transaction { s in try quotas.admitJob(tenantID: tenant, in: s); try s.enqueue(job) } }
            workers.wake()
            return try JSONCoding.response(JobDTO(job: job), status: .accepted, headers: [("Location", "/v1/jobs/\(job.id)")])
        }
    }

    /// Validates a task against the model, its window position and capacity, and queues it.
    func enqueueTask(_ body: TaskRequest, modelID: String, tenantID: String) throws -> Job {
        try quotas.admitJob(tenantID: tenantID)
        // Task jobs queued or running before this one run first (in order) and add their tasks:
        // counted in the same snapshot as the latest version.
        let (model, dataset, latest, usage, ahead) = try storeCall {
            try store.read { s in
                (try s.model(id: modelID, tenantID: tenantID), try s.dataset(id: body.datasetID, tenantID: tenantID),
                 try s.latestModelVersion(modelID: modelID, tenantID: tenantID), try s.continualUsage(modelID: modelID, tenantID: tenantID),
                 try s.activeJobs(modelID: modelID, tenantID: tenantID, kinds: [JobKind.task.rawValue]).count)
            }
        }
        let arch = try spec(of: model).architecture
        // An MLP has no basis columns for a window, but runs the naive sequential baseline of
        // research/pfc.md §3.1 ("window": null) through the same tasks, validation and R.
        guard arch.kind.blockCount > 0 || (arch.kind == .mlp && body.window == nil) else {
            throw APIError.invalid("the sliding window trains PFC basis columns; a \(arch.kind.rawValue) model has none"
                + (arch.kind == .mlp ? " (send \"window\": null for tasks without a window, the sequential baseline)" : ""))
        }
        let params = try body.jobParams(limits: configuration.limits, start: ContinualState(metrics: latest.metrics).nextWindowStart)
        let options = params.options
        try checkDataset(dataset, against: arch, tenantID: tenantID)
        // Issue 17: the evaluation sets of the accuracy matrix, one per task so far with this one.
        let number = ContinualState(metrics: latest.metrics).tasks + ahead + 1
        if let list = body.evaluateOn, list.count != number {
            let queued = ahead == 0 ? "" : " (\(ahead) task job\(ahead == 1 ? "" : "s") of this model queued or running before it)"
            throw APIError.invalid("evaluate_on must name \(number) datasets, one per task so far including this one (task \(number)\(queued)); it names \(list.count)")
        }
        for evalID in Set((body.evaluateOn ?? []) + [body.evaluationDatasetID].compactMap { $0 }) {
            let ds = try storeCall { try store.dataset(id: evalID, tenantID: tenantID) }
            do { try checkDataset(ds, against: arch, tenantID: tenantID) } catch let e as HTTPError where e.status == .unprocessableContent {
                throw APIError.invalid("evaluation dataset: \(e.message)")
            }
        }
        let trainer = Trainer(options: options)
        try configuration.limits.checkContinual(usage, adding: params.mostLedgerRows(datasetExamples: dataset.examples), what: "this task")
        let (_, network) = try loadNetwork(modelID: modelID, tenantID: tenantID, version: latest.version)
        // The model this task trains: grown to the K its window reaches, when it reaches past K.
        var trained = network.architecture
        if let need = trainer.requiredBasis(trainingExamples: trainer.trainingExamples(fromDataSetOf: dataset.examples)),
           need > trained.basis {
            guard body.grow else {
                throw APIError.invalid("this task's window would run to column \(need) but the model has K = \(trained.basis) "
                    + "basis columns: it needs K = \(need); send \"grow\": true to append \(need - trained.basis) fresh columns")
            }
            try configuration.limits.checkBasis(need, of: trained, action: "growing for this task")
            trained.basis = need
        }
        let datasetBytes = try configuration.limits.checkDatasetLoad(dataset, split: options.validationFraction > 0, what: "this task")
        try configuration.limits.checkTraining(batch: min(options.batchSize, dataset.examples), of: trained, what: "batch_size",
                                               reserved: datasetBytes)
        let job = try Job(tenantID: tenantID, modelID: modelID, params: .task(params))
        try storeCall { try store.transaction { s in try quotas.admitJob(tenantID: tenantID, in: s); try s.enqueue(job) } }
        workers.wake()
        return job
    }

    /// The one rule for task numbers in queries and bodies.
    static let taskNumberRule = "task must be a positive integer: tasks count from 1 (the first POST /v1/models/{id}/tasks is task 1)"

    /// 422 when a dataset does not fit a model (width, sequence form, classes, per-step labels, sign
    /// of the features) or is too large to load (`max_working_memory`). Per-step labels are accepted
    /// only where `perStepLabels` (training a recurrent model).
    func checkDataset(_ dataset: Dataset, against arch: Architecture, tenantID: String, perStepLabels: Bool = false) throws {
        try Self.checkDataset(dataset, against: arch, tenantID: tenantID, store: store, limits: configuration.limits, perStepLabels: perStepLabels)
    }

    /// `checkDataset` for code without the service (the forget job).
    static func checkDataset(_ dataset: Dataset, against arch: Architecture, tenantID: String, store: any Store,
                             limits: ServiceLimits, perStepLabels: Bool = false) throws {
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
        // Every use of a dataset with a model loads it whole (training twice over: checked at submit).
        try limits.checkDatasetLoad(dataset, split: false, what: "using this dataset")
        // The stored minimum answers at once; only older datasets without one read the blob.
        if arch.nonnegative, let least = dataset.minFeature, least < 0 {
            throw APIError.invalid("dataset \(dataset.id) has negative features (the smallest is \(least)); "
                + "this model is non-negative (PFC needs features ≥ 0)")
        }
        if arch.nonnegative && dataset.minFeature == nil {
            let data = try storeCall { try DatasetBlobReader.load(from: store, dataset: dataset, tenantID: tenantID, classes: arch.outputDim, limits: limits) }
            if let i = data.features.storage.firstIndex(where: { $0 < 0 }) {
                throw APIError.invalid("dataset \(dataset.id) row \(i / data.featureCount + 1), column \(i % data.featureCount + 1) "
                    + "has a negative feature; this model is non-negative (PFC needs features ≥ 0)")
            }
        }
    }
}
