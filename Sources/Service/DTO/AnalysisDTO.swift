// AnalysisDTO: NPEFF analysis requests, the job parameters and progress, and analyses as the API shows them.
import Foundation
import NPEFF
import Linalg
import PFC
import Storage

/// The decomposition an analysis runs.
enum AnalysisMethod: String, Codable, Sendable {
    /// D-NPEFF: NMF of diagonal PEFs.
    case diagonal
    /// LRM-NPEFF: low-rank PEFs as non-negative combinations of rank-1 PSD components.
    case lowRank = "low_rank"
}

/// `POST /v1/models/{id}/analyses`; stored as the analysis's params, so its keys are spelled out (the
/// stored format), like those of the job params, progress, results and summaries below.
struct AnalysisRequest: Codable, Equatable, ExplicitJSONKeys {
    var datasetID: String
    var method: AnalysisMethod = .diagonal
    var components = 32
    var topK = 512
    var steps = 500
    var classThreshold: Float = 3e-3
    var likelihood: PredictiveLikelihood = .softmax
    var seed: UInt64 = 0
    var version: Int?
    var examples = 1000

    static let maxComponents = 1000
    static let maxSteps = 100_000
    static let maxExamples = 20_000

    enum CodingKeys: String, CodingKey {
        case method, components, steps, likelihood, seed, version, examples
        case datasetID = "dataset_id", topK = "top_k", classThreshold = "class_threshold"
    }

    init(datasetID: String) { self.datasetID = datasetID }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        datasetID = try c.decode(String.self, forKey: .datasetID)
        method = try c.decodeIfPresent(AnalysisMethod.self, forKey: .method) ?? method
        components = try c.decodeIfPresent(Int.self, forKey: .components) ?? components
        topK = try c.decodeIfPresent(Int.self, forKey: .topK) ?? topK
        steps = try c.decodeIfPresent(Int.self, forKey: .steps) ?? steps
        classThreshold = try c.decodeIfPresent(Float.self, forKey: .classThreshold) ?? classThreshold
        likelihood = try c.decodeIfPresent(PredictiveLikelihood.self, forKey: .likelihood) ?? likelihood
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? seed
        version = try c.decodeIfPresent(Int.self, forKey: .version)
        examples = try c.decodeIfPresent(Int.self, forKey: .examples) ?? examples
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(datasetID, forKey: .datasetID)
        try c.encode(method, forKey: .method)
        try c.encode(components, forKey: .components)
        try c.encode(topK, forKey: .topK)
        try c.encode(steps, forKey: .steps)
        try c.encode(classThreshold, forKey: .classThreshold)
        try c.encode(likelihood, forKey: .likelihood)
        try c.encode(seed, forKey: .seed)
        try c.encode(version, forKey: .version)
        try c.encode(examples, forKey: .examples)
    }

    /// Checks the values that do not depend on the model (422 naming the field).
    func validate() throws {
        guard (1...Self.maxComponents).contains(components) else {
            throw APIError.invalid("components must be in 1…\(Self.maxComponents)")
        }
        guard topK >= 1 else { throw APIError.invalid("top_k must be at least 1") }
        guard (1...Self.maxSteps).contains(steps) else { throw APIError.invalid("steps must be in 1…\(Self.maxSteps)") }
        guard (1...Self.maxExamples).contains(examples) else { throw APIError.invalid("examples must be in 1…\(Self.maxExamples)") }
        guard classThreshold.isFinite, classThreshold >= 0, classThreshold < 1 else {
            throw APIError.invalid("class_threshold must be in [0, 1)")
        }
        if let v = version, v < 0 { throw APIError.invalid("version must be a non-negative integer") }
    }

    var pefOptions: PEFOptions { PEFOptions(likelihood: likelihood, classThreshold: classThreshold, topK: topK) }

    /// Bytes the PEFs of `examples` rows of a model with `m` parameters and `classes` outputs hold
    /// while they are computed and factorized (an upper estimate, nil on overflow): per compute thread
    /// the per-class gradient vectors (m floats each; softmax keeps at most 1/class_threshold + 1
    /// classes, npeff.md §1), the dense diagonal of every row of a 64-row chunk, the kept top-K entries
    /// of every row, and the NMF factors. `max_working_memory` is checked on it.
    func workingMemory(parameters m: Int, classes: Int, examples: Int, threads: Int) -> Int? {
        func mul(_ a: Int?, _ b: Int?) -> Int? { a.flatMap { a in b.flatMap { CheckedSize.product(a, $0) } } }
        let used = usedClasses(classes)
        let rows = max(0, examples)
        let compute = mul(max(1, threads), mul(CheckedSize.sum(mul(3, used), 2), m))
        let dense = method == .diagonal ? mul(min(64, rows) + 2, m) : 0
        let perRow = method == .diagonal ? min(topK, m) : (mul(used, m).map { min(topK, $0) } ?? topK)
        let stored = mul(4, mul(rows, perRow))
        let nmf = mul(2, mul(components, CheckedSize.sum(rows, mul(rows, perRow).map { min(m, $0) })))
        // LRM-NPEFF's A·Gᵀ (one row per example and kept class, one column per component) and its
        // weighted copy W̃ (npeff.md §3), dense.
        let lowRank = method == .lowRank ? mul(2, mul(mul(rows, used), components)) : 0
        return mul(4, CheckedSize.sum(compute, dense, stored, nmf, lowRank))
    }

    /// The classes whose gradients each example keeps: all of them, or under softmax with a
    /// threshold at most 1/class_threshold + 1 (npeff.md §1).
    func usedClasses(_ classes: Int) -> Int {
        if likelihood == .softmax && classThreshold > 0 && 1 / Double(classThreshold) < Double(classes) {
            return Int(1 / Double(classThreshold)) + 1 // below `classes`, so the conversion is safe
        }
        return max(1, classes)
    }

    /// Multiply-adds of a guided perturbation over `rows` examples of `arch`: its PEFs (a forward and
    /// a backward pass per kept class, counted as 3 forward passes each, plus the loss gradient), up
    /// to 24 KL evaluations of the perturbed model (2 passes each) and, for low_rank, each example's
    /// used² × m Gram of its PEF. Nil on overflow.
    func perturbWork(rows: Int, of arch: Architecture, parameters m: Int) -> Int? {
        let used = usedClasses(arch.outputDim)
        guard let passes = CheckedSize.sum(CheckedSize.product(3, used), 3, 2 * 24),
              let forward = CheckedSize.product(rows, passes).flatMap({ arch.inferenceWork(rows: $0) }) else { return nil }
        guard method == .lowRank else { return forward }
        return CheckedSize.sum(forward, CheckedSize.product(rows, used, used, m))
    }
}

/// `POST /v1/analyses/{id}/fit`.
struct FitRequest: Codable, Equatable {
    var datasetID: String
    var examples: Int?
    var steps: Int?
}

/// `POST /v1/analyses/{id}/components/{j}/perturb`.
struct PerturbRequest: Decodable {
    var magnitude: Float = 0.1
    var datasetID: String?
    var top: Int?
    var random: Int?
    var lambda: Float = 0.5
    var seed: UInt64 = 7
    /// Diagonal analyses: search δ and λ so the top examples' mean KL lands in [lo, hi] (npeff.md §5).
    var targetKL: [Double]?
    enum CodingKeys: CodingKey { case magnitude, top, random, lambda, seed, datasetID, targetKL }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        magnitude = try c.decodeIfPresent(Float.self, forKey: .magnitude) ?? magnitude
        datasetID = try c.decodeIfPresent(String.self, forKey: .datasetID)
        top = try c.decodeIfPresent(Int.self, forKey: .top)
        random = try c.decodeIfPresent(Int.self, forKey: .random)
        lambda = try c.decodeIfPresent(Float.self, forKey: .lambda) ?? lambda
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? seed
        targetKL = try c.decodeIfPresent([Double].self, forKey: .targetKL)
    }
}

/// The params of an `analysis` job: compute the decomposition, or fit its coefficients to another dataset.
struct AnalysisJobParams: Codable {
    enum Operation: String, Codable { case compute, fit }
    var analysisID: String
    var operation: Operation
    var datasetID: String
    var examples: Int?
    var steps: Int?
    enum CodingKeys: String, CodingKey { case operation, examples, steps, analysisID = "analysis_id", datasetID = "dataset_id" }
}

/// Progress of an analysis job: PEF examples done, then decomposition (or fitting) step and loss.
struct AnalysisProgressDTO: Codable {
    var phase: String
    var examplesDone: Int
    var examples: Int
    var step: Int
    var steps: Int
    var loss: Double?
    enum CodingKeys: String, CodingKey {
        case phase, examples, step, steps, loss, examplesDone = "examples_done"
    }
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(phase, forKey: .phase)
        try c.encode(examplesDone, forKey: .examplesDone)
        try c.encode(examples, forKey: .examples)
        try c.encode(step, forKey: .step)
        try c.encode(steps, forKey: .steps)
        try c.encode(loss.flatMap { $0.isFinite ? $0 : nil }, forKey: .loss)
    }
}

/// The result JSON of an analysis job.
struct AnalysisJobResult: Codable {
    var analysisID: String
    var operation: String
    var datasetID: String
    var examples: Int
    var components: Int
    var finalLoss: Double?
    var seconds: Double
    enum CodingKeys: String, CodingKey {
        case operation, examples, components, seconds
        case analysisID = "analysis_id", datasetID = "dataset_id", finalLoss = "final_loss"
    }
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(analysisID, forKey: .analysisID)
        try c.encode(operation, forKey: .operation)
        try c.encode(datasetID, forKey: .datasetID)
        try c.encode(examples, forKey: .examples)
        try c.encode(components, forKey: .components)
        try c.encode(finalLoss.flatMap { $0.isFinite ? $0 : nil }, forKey: .finalLoss)
        try c.encode(seconds.isFinite ? seconds : 0, forKey: .seconds)
    }
}

/// One top example of a component.
struct TopExampleDTO: Codable, Equatable {
    var row: Int
    var coefficient: Float
    var label: Int
    var prediction: Int
}

/// One recorded loss.
struct LossDTO: Codable, Equatable {
    var phase: String
    var step: Int
    var loss: Double
}

/// One fit of the analysis's components to another dataset, kept in the analysis's summary.
struct FitSummary: Codable, Equatable {
    struct Component: Codable, Equatable {
        var index: Int
        var meanCoefficient: Float
        var topExamples: [TopExampleDTO]
        enum CodingKeys: String, CodingKey { case index, meanCoefficient = "mean_coefficient", topExamples = "top_examples" }
    }
    var jobID: String
    var datasetID: String
    var examples: Int
    var steps: Int
    var components: [Component]
    enum CodingKeys: String, CodingKey { case examples, steps, components, jobID = "job_id", datasetID = "dataset_id" }
}

/// The analysis's stored summary JSON (`analyses.summary`). `keptColumns` (base64 Int32 LE) and `rows` are
/// internal: the model positions of the pseudo-Fisher entries and the dataset rows of the coefficients.
struct AnalysisSummary: Codable, Equatable {
    var examples: Int
    var rows: [Int]
    var parameterCount: Int
    var keptColumns: String
    var keptParameters: Int
    var finalLoss: Double?
    var losses: [LossDTO]
    var seconds: Double
    var fits: [FitSummary] = []
    enum CodingKeys: String, CodingKey {
        case examples, rows, losses, seconds, fits
        case parameterCount = "parameter_count", keptColumns = "kept_columns", keptParameters = "kept_parameters"
        case finalLoss = "final_loss"
    }

    var keptColumnIndices: [Int] { FloatBlob.int32s(Data(base64Encoded: keptColumns) ?? Data()) }

    /// Fits kept: the latest per dataset, for at most this many datasets (the oldest goes first).
    static let maxFits = 16
}

/// A component's stored summary JSON (`analysis_components.summary`).
struct ComponentSummary: Codable, Equatable {
    struct Parameter: Codable, Equatable {
        var block: Int?
        var matrix: String
        var row: Int
        var column: Int
        var value: Float
    }
    struct Part: Codable, Equatable {
        var block: Int
        var k: Int
        var share: Double
    }
    struct Parts: Codable, Equatable {
        var shares: [Part]
        var unassigned: Double
    }
    var index: Int
    var coefficientMean: Float
    var coefficientMax: Float
    var labelHistogram: [Int]
    var topLabel: Int?
    var topLabelShare: Double
    var pseudoFisherNorm: Float
    var nonzeros: Int
    var topParameters: [Parameter]
    var pfcParts: Parts
    enum CodingKeys: String, CodingKey {
        case index, nonzeros
        case coefficientMean = "coefficient_mean", coefficientMax = "coefficient_max", labelHistogram = "label_histogram"
        case topLabel = "top_label", topLabelShare = "top_label_share", pseudoFisherNorm = "pseudo_fisher_norm"
        case topParameters = "top_parameters", pfcParts = "pfc_parts"
    }
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(index, forKey: .index)
        try c.encode(coefficientMean, forKey: .coefficientMean)
        try c.encode(coefficientMax, forKey: .coefficientMax)
        try c.encode(labelHistogram, forKey: .labelHistogram)
        try c.encode(topLabel, forKey: .topLabel)
        try c.encode(topLabelShare, forKey: .topLabelShare)
        try c.encode(pseudoFisherNorm, forKey: .pseudoFisherNorm)
        try c.encode(nonzeros, forKey: .nonzeros)
        try c.encode(topParameters, forKey: .topParameters)
        try c.encode(pfcParts, forKey: .pfcParts)
    }
}

extension ComponentSummary.Parameter {
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(block, forKey: .block)
        try c.encode(matrix, forKey: .matrix)
        try c.encode(row, forKey: .row)
        try c.encode(column, forKey: .column)
        try c.encode(value, forKey: .value)
    }
}

/// Float32 / Int32 little-endian blobs.
enum FloatBlob {
    static func encode(_ values: [Float]) -> Data {
        var d = Data(capacity: values.count * 4)
        for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { d.append(contentsOf: $0) } }
        return d
    }
    static func decode(_ data: Data) -> [Float] {
        let b = [UInt8](data)
        return stride(from: 0, to: b.count - 3, by: 4).map { i in
            Float(bitPattern: UInt32(b[i]) | UInt32(b[i + 1]) << 8 | UInt32(b[i + 2]) << 16 | UInt32(b[i + 3]) << 24)
        }
    }
    static func encode(int32s values: [Int]) -> Data {
        var d = Data(capacity: values.count * 4)
        for v in values { withUnsafeBytes(of: Int32(clamping: v).littleEndian) { d.append(contentsOf: $0) } }
        return d
    }
    static func int32s(_ data: Data) -> [Int] {
        decode(data).map { Int(Int32(bitPattern: $0.bitPattern)) }
    }
}

/// `202` answer of `POST /v1/models/{id}/analyses`.
struct AnalysisCreatedDTO: Encodable {
    var id: String
    var jobID: String
    var state: String
}

/// An analysis as the API shows it.
struct AnalysisDTO: Encodable {
    var analysis: Analysis

    enum CodingKeys: CodingKey {
        case id, method, state, params, examples, losses, seconds, fits, modelID, modelVersion, datasetID, jobID
        case components, parameterCount, keptParameters, finalLoss, createdAt
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        let params = try? JSONDecoder().decode(AnalysisRequest.self, from: Data(analysis.params.utf8))
        let summary = analysis.summary.flatMap { try? JSONDecoder().decode(AnalysisSummary.self, from: Data($0.utf8)) }
        try c.encode(analysis.id, forKey: .id)
        try c.encode(analysis.modelID, forKey: .modelID)
        try c.encode(analysis.modelVersion, forKey: .modelVersion)
        try c.encode(analysis.datasetID, forKey: .datasetID)
        try c.encode(analysis.kind, forKey: .method)
        try c.encode(analysis.state, forKey: .state)
        try c.encode(analysis.jobID, forKey: .jobID)
        try c.encode(JSONValue.parse(analysis.params) ?? .object([:]), forKey: .params)
        try c.encode(params?.components, forKey: .components)
        try c.encode(summary?.examples, forKey: .examples)
        try c.encode(summary?.parameterCount, forKey: .parameterCount)
        try c.encode(summary?.keptParameters, forKey: .keptParameters)
        try c.encode(summary?.finalLoss.flatMap { $0.isFinite ? $0 : nil }, forKey: .finalLoss)
        try c.encode((summary?.losses ?? []).filter { $0.loss.isFinite }, forKey: .losses)
        try c.encode(summary.map { $0.seconds.isFinite ? $0.seconds : 0 }, forKey: .seconds)
        try c.encode(summary?.fits ?? [], forKey: .fits)
        try c.encode(analysis.createdAt, forKey: .createdAt)
    }
}

/// One component in `GET /v1/analyses/{id}/components`.
struct AnalysisComponentSummaryDTO: Encodable {
    var summary: ComponentSummary
    enum CodingKeys: CodingKey {
        case index, nonzeros, coefficientMean, coefficientMax, topLabel, topLabelShare, pseudoFisherNorm, topPart
    }
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(summary.index, forKey: .index)
        try c.encode(summary.coefficientMean, forKey: .coefficientMean)
        try c.encode(summary.coefficientMax, forKey: .coefficientMax)
        try c.encode(summary.topLabel, forKey: .topLabel)
        try c.encode(summary.topLabelShare, forKey: .topLabelShare)
        try c.encode(summary.pseudoFisherNorm, forKey: .pseudoFisherNorm)
        try c.encode(summary.nonzeros, forKey: .nonzeros)
        try c.encode(summary.pfcParts.shares.first, forKey: .topPart)
    }
}

/// `GET /v1/analyses/{id}/components`.
struct AnalysisComponentListDTO: Encodable {
    var analysisID: String
    var method: String
    var components: [AnalysisComponentSummaryDTO]
}

/// `GET /v1/analyses/{id}/components/{j}`.
struct AnalysisComponentDTO: Encodable {
    var analysisID: String
    var method: String
    var summary: ComponentSummary
    var topExamples: [TopExampleDTO]
    enum CodingKeys: CodingKey {
        case index, method, nonzeros, analysisID, coefficientMean, coefficientMax, topExamples, labelHistogram, topLabel
        case topLabelShare, pseudoFisherNorm, topParameters, pfcParts
    }
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(analysisID, forKey: .analysisID)
        try c.encode(method, forKey: .method)
        try c.encode(summary.index, forKey: .index)
        try c.encode(summary.coefficientMean, forKey: .coefficientMean)
        try c.encode(summary.coefficientMax, forKey: .coefficientMax)
        try c.encode(topExamples, forKey: .topExamples)
        try c.encode(summary.labelHistogram, forKey: .labelHistogram)
        try c.encode(summary.topLabel, forKey: .topLabel)
        try c.encode(summary.topLabelShare, forKey: .topLabelShare)
        try c.encode(summary.pseudoFisherNorm, forKey: .pseudoFisherNorm)
        try c.encode(summary.nonzeros, forKey: .nonzeros)
        try c.encode(summary.topParameters, forKey: .topParameters)
        try c.encode(summary.pfcParts, forKey: .pfcParts)
    }
}

/// One sign of a perturbation.
struct PerturbSignDTO: Encodable {
    var sign: Int
    var klRatio: Double
    var topKL: Double
    var baselineKL: Double
    var topAccuracy: Double
    var baselineAccuracy: Double
    init(_ e: PerturbationEvaluation) {
        sign = e.sign < 0 ? -1 : 1
        klRatio = finite(e.klRatio); topKL = finite(e.topKL); baselineKL = finite(e.baselineKL)
        topAccuracy = finite(e.topAccuracy); baselineAccuracy = finite(e.baselineAccuracy)
    }
}

/// The answer of `POST /v1/analyses/{id}/components/{j}/perturb`.
struct PerturbResponse: Encodable {
    var analysisID: String
    var component: Int
    var method: String
    var datasetID: String
    var magnitude: Float
    var lambda: Float?
    var sign: Int
    var klRatio: Double
    var pefNormRatio: Double
    var topKL: Double
    var baselineKL: Double
    var topAccuracy: Double
    var baselineAccuracy: Double
    var originalTopAccuracy: Double
    var topExamples: [Int]
    var randomExamples: Int
    var bySign: [PerturbSignDTO]
    /// With `target_kl`: the top examples' mean KL the search reached (at the offset's searched sign).
    var targetedKL: Double?
    enum CodingKeys: CodingKey {
        case component, method, magnitude, lambda, sign, targetedKL, analysisID, datasetID, klRatio, pefNormRatio, topKL
        case baselineKL, topAccuracy, baselineAccuracy, originalTopAccuracy, topExamples, randomExamples, bySign
    }
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(analysisID, forKey: .analysisID)
        try c.encode(component, forKey: .component)
        try c.encode(method, forKey: .method)
        try c.encode(datasetID, forKey: .datasetID)
        try c.encode(magnitude, forKey: .magnitude)
        try c.encode(lambda, forKey: .lambda)
        try c.encode(sign, forKey: .sign)
        try c.encode(klRatio, forKey: .klRatio)
        try c.encode(pefNormRatio, forKey: .pefNormRatio)
        try c.encode(topKL, forKey: .topKL)
        try c.encode(baselineKL, forKey: .baselineKL)
        try c.encode(topAccuracy, forKey: .topAccuracy)
        try c.encode(baselineAccuracy, forKey: .baselineAccuracy)
        try c.encode(originalTopAccuracy, forKey: .originalTopAccuracy)
        try c.encode(topExamples, forKey: .topExamples)
        try c.encode(randomExamples, forKey: .randomExamples)
        try c.encode(bySign, forKey: .bySign)
        try c.encode(targetedKL, forKey: .targetedKL)
    }
}

/// `x`, or 0 when it is not finite (JSON has no NaN or infinity).
func finite(_ x: Double) -> Double { x.isFinite ? x : 0 }
