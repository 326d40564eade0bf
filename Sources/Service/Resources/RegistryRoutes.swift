// RegistryRoutes: one model version, its weights as a download (.pfc or safetensors), and import of
// either format as a new model (issue 16, the registry).
import Foundation
import HTTP
import Linalg
import PFC
import Storage

extension ServiceLimits {
    /// Largest model file accepted by `POST /v1/models/import`: `max_parameters` float32 weights plus
    /// 16 MiB for the header (architecture JSON, names, safetensors header).
    var maxModelFileBytes: Int { (CheckedSize.product(maxParameters, 4) ?? Int.max / 2) + SafetensorsFile.maxHeaderBytes }
}

/// The two file formats of a model version.
enum WeightsFormat: String {
    /// The service's own `.pfc` file (ModelFile), as `pfc-server train --out` writes it.
    case pfc
    /// A safetensors file whose metadata holds the architecture.
    case safetensors

    static let pfcMediaType = "application/octet-stream"
    static let safetensorsMediaType = "application/x-safetensors"

    /// `?format=` first, then `Accept` (safetensors when it names `application/x-safetensors`); .pfc otherwise.
    static func requested(_ request: Request) throws -> WeightsFormat {
        if let q = request.queryValue("format") {
            guard let f = WeightsFormat(rawValue: q.lowercased()) else {
                throw APIError.badRequest("format must be pfc or safetensors, not \(q)", code: "invalid_parameter")
            }
            return f
        }
        let accept = request.headers.values("Accept").joined(separator: ",").lowercased()
        return accept.contains(safetensorsMediaType) ? .safetensors : .pfc
    }
}

extension PFCService {
    func registerRegistry(_ r: inout Router) {
        let limits = configuration.limits
        r.get("/v1/models/{id}/versions/{v}") { [store] request, ctx in
            let tenant = try ctx.tenantID(), id = try request.pathParameter("id")
            let v = try Self.versionParameter(request)
            let (version, evaluations) = try storeCall { try store.read { s in
                _ = try s.model(id: id, tenantID: tenant)
                let version = try s.modelVersion(modelID: id, version: v, tenantID: tenant)
                return (version, try s.evaluations(modelID: id, version: v, tenantID: tenant, page: PageRequest(limit: Self.versionEvaluations, offset: 0),
                                                   summariesOnly: true))
            } }
            return try JSONCoding.response(VersionWithEvaluationsDTO(version: ModelVersionDTO(version), evaluations: evaluations))
        }
        r.get("/v1/models/{id}/versions/{v}/evaluations") { [store] request, ctx in
            let tenant = try ctx.tenantID(), id = try request.pathParameter("id")
            let v = try Self.versionParameter(request)
            let page = try Pagination(request)
            _ = try storeCall { try store.modelVersion(modelID: id, version: v, tenantID: tenant) }
            // Bounded by bytes too: one evaluation of a 1000-class model holds a confusion matrix of megabytes.
            let found = try storeCall {
                try BoundedPage.read(limit: page.limit, offset: page.offset, size: { $0.result.bytes.count }) { p in
                    try store.evaluations(modelID: id, version: v, tenantID: tenant, page: p)
                }
            }
            return try JSONCoding.response(ListPage(items: found.items.map(EvaluationDTO.init), nextOffset: found.nextOffset))
        }
        r.get("/v1/models/{id}/versions/{v}/weights") { [store] request, ctx in
            let tenant = try ctx.tenantID(), id = try request.pathParameter("id")
            let v = try Self.versionParameter(request)
            let format = try WeightsFormat.requested(request)
            let (model, bytes) = try storeCall { try store.read { s in
                let m = try s.model(id: id, tenantID: tenant)
                _ = try s.modelVersion(modelID: id, version: v, tenantID: tenant)
                return (m, try s.modelWeights(modelID: id, version: v, tenantID: tenant))
            } }
            var body = Array(bytes)
            if format == .safetensors {
                do {
                    let (arch, params) = try ModelFile.decodeParts(body)
                    body = SafetensorsFile.encode(architecture: arch, parameters: params)
                } catch {
                    throw HTTPError(.internalServerError, message: "stored weights of model \(id) v\(v) are unreadable: \(error)")
                }
            }
            var response = Response(status: .ok, body: .bytes(body))
            response.headers.replaceOrAdd(name: "Content-Type", value: format == .pfc ? WeightsFormat.pfcMediaType : WeightsFormat.safetensorsMediaType)
            let file = Self.fileName(model.name, version: v, format: format)
            response.headers.replaceOrAdd(name: "Content-Disposition", value: "attachment; filename=\"\(file)\"")
            return response
        }
        r.post("/v1/models/import", options: RouteOptions(maxBodyBytes: limits.maxModelFileBytes)) { [store, quotas] request, ctx in
            let tenant = try ctx.tenantID()
            let name = try DatasetUpload.validName(request.queryValue("name") ?? "imported model")
            let bytes = try request.body.collect(maxBytes: limits.maxModelFileBytes)
            let (format, arch, params) = try Self.parseModelFile(bytes, mediaType: JSONCoding.mediaType(request))
            let spec = ModelSpec(architecture: arch, seed: 0)
            try Self.checkLimits(arch, limits: limits)
            let network: any Network
            do { network = try NetworkFactory.make(arch, parameters: params) } catch {
                throw APIError.invalid("the \(format.rawValue) file does not fit its architecture: \(error)")
            }
            // As for every version written here: weights that are not finite would make every prediction meaningless.
            if let problem = nonFiniteProblem(network) { throw APIError.invalid("the \(format.rawValue) file cannot be imported: \(problem)") }
            try quotas.admitModel(tenantID: tenant)
            let model = Model(tenantID: tenant, name: name, kind: arch.kind.rawValue,
                              architecture: String(decoding: try JSONCoding.encoder.encode(spec), as: UTF8.self))
            // Stored as the service's own file, so export → import → export is bit-exact in either format.
            let weights = Data(ModelFile.encode(network))
            var metrics = VersionMetrics()
            metrics.importedFrom = format.rawValue
            try storeCall {
                try store.transaction { s in
                    try quotas.admitModel(tenantID: tenant, in: s)
                    try s.insert(model)
                    try s.insert(ModelVersion(modelID: model.id, version: 1, parentVersion: nil, reason: .import, metrics: try JSONColumn(metrics)),
                                 weights: weights, tenantID: tenant)
                }
            }
            return try JSONCoding.response(ModelDTO(id: model.id, name: model.name, spec: spec, version: 1, createdAt: model.createdAt),
                                           status: .created, headers: [("Location", "/v1/models/\(model.id)")])
        }
    }

    /// Evaluations summarized in `GET /v1/models/{id}/versions/{v}` (the first, oldest first; all of
    /// them, whole, at `…/versions/{v}/evaluations`).
    static let versionEvaluations = 50

    /// The `{v}` path parameter: a version number ≥ 0.
    static func versionParameter(_ request: Request) throws -> Int {
        let text = (try? request.pathParameter("v")) ?? ""
        guard let v = Int(text), v >= 0 else { throw APIError.badRequest("version must be a non-negative integer, not \(text)", code: "invalid_parameter") }
        return v
    }

    /// A download name from the model's name: letters, digits, `-` and `_` kept, the rest `_`.
    static func fileName(_ name: String, version: Int, format: WeightsFormat) -> String {
        let safe = String(name.unicodeScalars.prefix(80).map { CharacterSet.alphanumerics.contains($0) && $0.isASCII || $0 == "-" || $0 == "_" ? Character($0) : "_" })
        return "\(safe.isEmpty ? "model" : safe)-v\(version).\(format == .pfc ? "pfc" : "safetensors")"
    }

    /// Reads an uploaded model file: its format from the bytes (the `.pfc` magic, or a safetensors
    /// header), which must agree with the Content-Type when one of the two model types is given.
    static func parseModelFile(_ bytes: [UInt8], mediaType: String?) throws -> (WeightsFormat, Architecture, [Parameter]) {
        guard !bytes.isEmpty else { throw APIError.invalid("the body is empty; send a .pfc or safetensors model file") }
        let format: WeightsFormat
        if bytes.starts(with: ModelFile.magic) {
            format = .pfc
        } else if SafetensorsFile.looksLikeSafetensors(bytes) {
            format = .safetensors
        } else {
            throw APIError.invalid("the body is neither a .pfc model file (magic PFCMODEL) nor a safetensors file")
        }
        switch mediaType {
        case WeightsFormat.safetensorsMediaType? where format != .safetensors:
            throw APIError.invalid("Content-Type says safetensors but the body is a .pfc model file")
        case nil, WeightsFormat.pfcMediaType?, WeightsFormat.safetensorsMediaType?: break
        case let other?:
            throw APIError.unsupportedMediaType(other, accepted: [WeightsFormat.pfcMediaType, WeightsFormat.safetensorsMediaType])
        }
        do {
            let (arch, params) = format == .pfc ? try ModelFile.decodeParts(bytes) : try SafetensorsFile.decodeParts(bytes)
            return (format, arch, params)
        } catch let error as ModelFileError {
            throw APIError.invalid("the \(format.rawValue) file cannot be imported: \(error)")
        }
    }

    /// The creation limits (`max_basis`, `max_iterations`, `max_input_dim`, `max_output_dim`,
    /// `max_parameters`) applied to an imported architecture, so no import makes a model the API
    /// could not have created.
    static func checkLimits(_ arch: Architecture, limits: ServiceLimits) throws {
        if let problem = arch.validationProblem() { throw APIError.invalid("architecture: \(problem)") }
        if arch.basis > limits.maxBasis { throw APIError.invalid("basis \(arch.basis) is over max_basis \(limits.maxBasis)") }
        if arch.iterations > limits.maxIterations { throw APIError.invalid("iterations \(arch.iterations) is over max_iterations \(limits.maxIterations)") }
        if arch.inputDim > limits.maxInputDim { throw APIError.invalid("input_dim \(arch.inputDim) is over max_input_dim \(limits.maxInputDim)") }
        if arch.outputDim > limits.maxOutputDim { throw APIError.invalid("output_dim \(arch.outputDim) is over max_output_dim \(limits.maxOutputDim)") }
        if arch.kind.isSequence && arch.sequenceLength > 10_000 { throw APIError.invalid("sequence_length must be at most 10000") }
        if arch.kind.hasSignedWeights && arch.nonnegative {
            throw APIError.invalid("the \(arch.kind.rawValue) model has signed weights; its architecture must not be nonnegative")
        }
        guard let weights = arch.parameterCount, weights <= limits.maxParameters else {
            throw APIError.invalid("the model has \(arch.parameterCount.map { "\($0)" } ?? "too many") weights; the limit max_parameters is \(limits.maxParameters)")
        }
    }
}

/// A version with its evaluations (issue 16): `ModelVersionDTO`'s fields plus `evaluations`
/// (summaries) and `evaluations_next_offset` (where `…/evaluations` continues; null when all are shown).
struct VersionWithEvaluationsDTO: Encodable {
    var version: ModelVersionDTO
    var evaluations: Page<Evaluation>
    enum CodingKeys: String, CodingKey { case evaluations, evaluationsNextOffset = "evaluations_next_offset" }
    func encode(to encoder: any Encoder) throws {
        try version.encode(to: encoder)
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(evaluations.items.map(EvaluationSummaryDTO.init), forKey: .evaluations)
        try c.encode(evaluations.nextOffset, forKey: .evaluationsNextOffset)
    }
}
