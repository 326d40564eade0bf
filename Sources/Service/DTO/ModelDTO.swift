// ModelDTO: models, their creation request and their versions.
import Foundation
import Linalg
import PFC
import Storage

/// What a model is made of, stored as the model's architecture JSON.
struct ModelSpec: Codable, Equatable {
    var architecture: Architecture
    var seed: UInt64
}

/// `POST /v1/models`.
struct CreateModelRequest: Decodable {
    var name: String
    var kind: ModelKind
    var inputDim: Int
    var outputDim: Int
    var basis: Int?
    var iterations: Int?
    var loss: LossKind?
    var nonnegative: Bool?
    var labelLossWeight: Float?
    var seed: UInt64?
    var hidden: Int?
    var bptt: Bool?
    var sequenceLength: Int?
}

/// A model as the API shows it.
struct ModelDTO: Encodable {
    var id: String
    var name: String
    var spec: ModelSpec
    var version: Int
    var createdAt: Date

    enum CodingKeys: CodingKey {
        case id, name, kind, basis, iterations, loss, nonnegative, seed, version, bptt, sequenceLength, inputDim
        case outputDim, labelLossWeight, createdAt
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        let a = spec.architecture
        try c.encode(id, forKey: .id)
        try c.encode(name, forKey: .name)
        try c.encode(a.kind, forKey: .kind)
        try c.encode(a.inputDim, forKey: .inputDim)
        try c.encode(a.outputDim, forKey: .outputDim)
        try c.encode(a.basis, forKey: .basis)
        try c.encode(a.iterations, forKey: .iterations)
        try c.encode(a.loss, forKey: .loss)
        try c.encode(a.nonnegative, forKey: .nonnegative)
        try c.encode(a.labelLossWeight, forKey: .labelLossWeight)
        try c.encode(spec.seed, forKey: .seed)
        try c.encode(a.sequenceLength, forKey: .sequenceLength)
        try c.encode(a.bptt, forKey: .bptt)
        try c.encode(version, forKey: .version)
        try c.encode(createdAt, forKey: .createdAt)
    }
}

/// A model version as the API shows it.
struct ModelVersionDTO: Encodable {
    var version: Int
    var parentVersion: Int?
    var reason: String
    var metrics: JSONValue
    var createdAt: Date

    enum CodingKeys: CodingKey { case version, reason, metrics, parentVersion, createdAt }

    init(_ v: ModelVersion) {
        version = v.version
        parentVersion = v.parentVersion
        reason = v.reason.rawValue
        metrics = JSONValue.parse(v.metrics) ?? .object([:])
        createdAt = v.createdAt
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(version, forKey: .version)
        try c.encode(parentVersion, forKey: .parentVersion)
        try c.encode(reason, forKey: .reason)
        try c.encode(metrics, forKey: .metrics)
        try c.encode(createdAt, forKey: .createdAt)
    }
}

/// Any JSON value, for free-form objects stored as text (metrics, progress, results).
enum JSONValue: Codable, Equatable, Sendable {
    case null, bool(Bool), number(Double), string(String), array([JSONValue]), object([String: JSONValue])

    /// Parses JSON text; nil when it is not valid JSON.
    static func parse(_ text: String?) -> JSONValue? {
        guard let text, let data = text.data(using: .utf8) else { return nil }
        return try? JSONDecoder().decode(JSONValue.self, from: data)
    }

    /// The number as an `Int` when it is a whole number that fits (never traps).
    var int: Int? {
        guard case .number(let n) = self else { return nil }
        return CheckedSize.integer(n, in: Int(Int32.min)...Int(Int32.max) * 1024)
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let n = try? c.decode(Double.self) { self = .number(n) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let b): try c.encode(b)
        case .number(let n): if n.isFinite { try c.encode(n) } else { try c.encodeNil() }
        case .string(let s): try c.encode(s)
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        }
    }
}
