// ModelRoutes: create, list, get and delete models, their versions, and training requests.
import Foundation
import HTTP
import PFC
import Storage

extension PFCService {
    func registerModels(_ r: inout Router) {
        let limits = configuration.limits
        r.post("/v1/models") { [store, quotas] request, ctx in
            let tenant = try ctx.tenantID()
            let body = try JSONCoding.decode(CreateModelRequest.self, from: request, maxBytes: limits.maxRequestBytes)
            let spec = try Self.validate(body, limits: limits)
            try quotas.admitModel(tenantID: tenant)
            let network = NetworkFactory.make(spec.architecture, seed: spec.seed)
            let model = Model(tenantID: tenant, name: body.name, kind: spec.architecture.kind.rawValue,
                              architecture: String(decoding: try JSONCoding.encoder.encode(spec), as: UTF8.self))
            let weights = Data(ModelFile.encode(network))
            try storeCall {
                try store.transaction { s in
                    try quotas.admitModel(tenantID: tenant, in: s)
                    try s.insert(model)
                    try s.insert(ModelVersion(modelID: model.id, version: 0, parentVersion: nil, reason: .create), weights: weights, tenantID: tenant)
                }
            }
            return try JSONCoding.response(ModelDTO(id: model.id, name: model.name, spec: spec, version: 0, createdAt: model.createdAt),
                                           status: .created, headers: [("Location", "/v1/models/\(model.id)")])
        }
        r.get("/v1/models") { [self] request, ctx in
            let tenant = try ctx.tenantID(), page = try Pagination(request)
            let dtos: ([ModelDTO], Int?) = try storeCall {
                try store.read { s in
                    let result = try s.models(tenantID: tenant, page: PageRequest(limit: page.limit, offset: page.offset))
                    return (try result.items.map { try modelDTO($0, session: s) }, result.nextOffset)
                }
            }
            return try JSONCoding.response(ListPage(items: dtos.0, nextOffset: dtos.1))
        }
        // The row and latest version are read on every request (one statement), so this is never
        // stale; only the decoding and encoding are skipped while they are unchanged.
        let bodies = ModelBodyCache(capacity: Self.modelBodyCacheCapacity)
        r.get("/v1/models/{id}", options: inlineOnEmbeddedStore) { [self] request, ctx in
            let tenant = try ctx.tenantID(), id = try request.pathParameter("id")
            let (model, latest) = try storeCall { try store.modelWithLatestVersion(id: id, tenantID: tenant) }
            let body = try bodies.body(for: .init(model: model, latestVersion: latest)) { source in
                let dto = ModelDTO(id: source.model.id, name: source.model.name, spec: try spec(of: source.model),
                                   version: source.latestVersion, createdAt: source.model.createdAt)
                return Array(try JSONCoding.apiEncoder.encode(dto))
            }
            return Response.json(body)
        }
        r.delete("/v1/models/{id}") { [store, modelCache, bodies] request, ctx in
            let tenant = try ctx.tenantID(), id = try request.pathParameter("id")
            try storeCall {
                try store.transaction { s in
                    _ = try s.model(id: id, tenantID: tenant)
                    let active = try s.activeJobCount(modelID: id)
                    if active > 0 { throw APIError.conflict("model \(id) is used by \(active) queued or running job(s); cancel them first") }
                    try s.deleteModel(id: id, tenantID: tenant)
                }
            }
            modelCache.evict(modelID: id)
            bodies.evict(modelID: id)
            return Response(status: .noContent)
        }
        r.get("/v1/models/{id}/versions") { [store] request, ctx in
            let tenant = try ctx.tenantID(), id = try request.pathParameter("id"), page = try Pagination(request)
            let result = try storeCall {
                try store.read { s in
                    _ = try s.model(id: id, tenantID: tenant)
                    return try s.modelVersions(modelID: id, tenantID: tenant, page: PageRequest(limit: page.limit, offset: page.offset))
                }
            }
            return try JSONCoding.response(ListPage(items: result.items.map(ModelVersionDTO.init), nextOffset: result.nextOffset))
        }
        r.post("/v1/models/{id}/train") { [self] request, ctx in
            let tenant = try ctx.tenantID(), id = try request.pathParameter("id")
            let body = try JSONCoding.decode(TrainRequest.self, from: request, maxBytes: limits.maxRequestBytes)
            let job = try enqueueTraining(body, modelID: id, tenantID: tenant)
            return try JSONCoding.response(JobDTO(job: job), status: .accepted, headers: [("Location", "/v1/jobs/\(job.id)")])
        }
    }

    /// Models whose `GET /v1/models/{id}` body is kept (`ModelBodyCache`).
    static let modelBodyCacheCapacity = 4096

    /// Checks a creation request against the architecture rules and the service limits.
    static func validate(_ b: CreateModelRequest, limits: ServiceLimits) throws -> ModelSpec {
        try APIError.refuseNUL(try DatasetUpload.validName(b.name), field: "name")
        let sequence = b.kind.isSequence
        if !sequence && (b.sequenceLength != nil || b.bptt != nil) {
            throw APIError.invalid("sequence_length and bptt apply to the factorized_rnn and rnn kinds only")
        }
        if let h = b.hidden, let k = b.basis, h != k { throw APIError.invalid("hidden and basis name the same size; give one") }
        var arch = Architecture(kind: b.kind, inputDim: b.inputDim, outputDim: b.outputDim, basis: b.hidden ?? b.basis ?? (sequence ? 128 : 300),
                                iterations: b.iterations ?? (sequence ? 10 : 100), loss: b.loss ?? .labelsMSE,
                                labelLossWeight: b.labelLossWeight ?? 0.5, nonnegative: b.nonnegative ?? b.kind.nonnegativeByDefault)
        if sequence {
            guard let t = b.sequenceLength else { throw APIError.invalid("sequence_length (steps T per example) is required for \(b.kind.rawValue)") }
            arch.sequenceLength = t
            arch.bptt = b.bptt ?? true
            if t > 10_000 { throw APIError.invalid("sequence_length must be at most 10000") }
        }
        if let problem = arch.validationProblem() { throw APIError.invalid(problem) }
        if arch.basis > limits.maxBasis { throw APIError.invalid("basis must be at most \(limits.maxBasis)") }
        if arch.iterations > limits.maxIterations { throw APIError.invalid("iterations must be at most \(limits.maxIterations)") }
        if arch.inputDim > limits.maxInputDim { throw APIError.invalid("input_dim must be at most \(limits.maxInputDim)") }
        if arch.outputDim > limits.maxOutputDim { throw APIError.invalid("output_dim must be at most \(limits.maxOutputDim)") }
        // The exact count (the same one model files are checked against), computed without overflow.
        guard let weights = arch.parameterCount, weights <= limits.maxParameters else {
            throw APIError.invalid("the model would have \(arch.parameterCount.map { "\($0)" } ?? "too many") weights; "
                + "the limit max_parameters is \(limits.maxParameters) (reduce basis or input_dim)")
        }
        if b.kind.hasSignedWeights && b.nonnegative == true {
            throw APIError.invalid("the \(b.kind.rawValue) model has signed weights; nonnegative must be false")
        }
        return ModelSpec(architecture: arch, seed: b.seed ?? 0)
    }

    func modelDTO(_ m: Model, session s: StoreSession) throws -> ModelDTO {
        let latest = try s.latestModelVersion(modelID: m.id, tenantID: m.tenantID)
        return ModelDTO(id: m.id, name: m.name, spec: try spec(of: m), version: latest.version, createdAt: m.createdAt)
    }

    /// Validates a training request against the model and dataset and queues the job.
    func enqueueTraining(_ body: TrainRequest, modelID: String, tenantID: String) throws -> Job {
        try quotas.admitJob(tenantID: tenantID)
        var params = try body.jobParams(limits: configuration.limits)
        params.branches = params.baseVersion != nil
        let (model, dataset, kept) = try storeCall {
            try store.read { s in
                let m = try s.model(id: modelID, tenantID: tenantID)
                if let v = params.baseVersion { _ = try s.modelVersion(modelID: modelID, version: v, tenantID: tenantID) }
                // Without `version` the job continues the statistics of the version latest when it runs.
                // When the model's train, task or forget jobs run before it, that version is the one
                // the last of them writes: a train job's keeps statistics (its worker checks them), a
                // task's or forget's none.
                var kept: (version: Int, kind: String?)? = nil
                if params.continueOptimizer == true {
                    if let v = params.baseVersion {
                        kept = (v, try s.optimizerStateKind(modelID: modelID, version: v, tenantID: tenantID))
                    } else {
                        let ahead = try s.activeJobs(modelID: modelID, tenantID: tenantID, kinds: JobKind.oneAtATimePerModel.map(\.rawValue))
                        if let last = ahead.lastKind, last != JobKind.train.rawValue {
                            throw APIError.conflict("continue_optimizer: this job would start from the version the \(last) job queued "
                                + "before it writes, and a \(last) keeps no optimizer state; omit continue_optimizer to start the "
                                + "optimizer afresh, or send it once a train job is queued behind that \(last)")
                        }
                        if ahead.count == 0 {
                            let v = try s.latestModelVersion(modelID: modelID, tenantID: tenantID).version
                            kept = (v, try s.optimizerStateKind(modelID: modelID, version: v, tenantID: tenantID))
                        }
                    }
                }
                return (m, try s.dataset(id: params.datasetID, tenantID: tenantID), kept)
            }
        }
        if let kept {
            guard let kind = kept.kind else {
                throw APIError.conflict("version \(kept.version) of model \(modelID) has no optimizer state to continue: only versions "
                    + "written by a train job keep one; omit continue_optimizer to start the optimizer afresh")
            }
            guard kind == params.options.optimizer.rawValue else {
                throw APIError.invalid("continue_optimizer: version \(kept.version) kept \(kind) statistics but this request uses "
                    + "\(params.options.optimizer.rawValue); send \"optimizer\": \"\(kind)\" or omit continue_optimizer")
            }
        }
        let arch = try spec(of: model).architecture
        try checkDataset(dataset, against: arch, tenantID: tenantID, perStepLabels: true)
        let datasetBytes = try configuration.limits.checkDatasetLoad(dataset, split: params.options.validationFraction > 0, what: "training")
        try configuration.limits.checkTraining(batch: min(params.options.batchSize, dataset.examples), of: arch, what: "batch_size",
                                               reserved: datasetBytes)
        let job = try Job(tenantID: tenantID, modelID: modelID, params: .train(params))
        try storeCall {
            try store.transaction { s in
                try quotas.admitJob(tenantID: tenantID, in: s)
                try s.enqueue(job)
            }
        }
        workers.wake()
        return job
    }
}

extension APIError {
    /// 422 naming `field` when `value` contains U+0000: PostgreSQL text cannot store it, and a
    /// name must read back as it was sent (the store refuses it too, as a last guard).
    static func refuseNUL(_ value: String, field: String) throws {
        if value.utf8.contains(0) { throw invalid("\(field) must not contain the NUL character (U+0000)") }
    }
}
