// SequenceForm: the sequence shape of uploaded examples (T steps of d numbers) and their labels,
// one per sequence or one per step (issue 8).
import Foundation

/// A dataset's sequence form: each example is `steps` steps of `stepFeatures` numbers, flat step
/// after step.
struct SequenceForm: Equatable {
    var steps: Int
    var stepFeatures: Int
    /// Largest `step_features` accepted (the service's input_dim limit is 100000 too).
    static let maxStepFeatures = 100_000

    var description: String { "\(steps) steps × \(stepFeatures)" }

    /// The form declared by `sequence_length` and `step_features` (both or neither; positive).
    static func declared(sequenceLength: Int?, stepFeatures: Int?) throws -> SequenceForm? {
        switch (sequenceLength, stepFeatures) {
        case (nil, nil): return nil
        case let (t?, d?):
            guard t >= 1, d >= 1, t <= 10_000, d <= Self.maxStepFeatures else {
                throw APIError.invalid("sequence_length (1…10000) and step_features (1…\(Self.maxStepFeatures)) must be positive integers")
            }
            return SequenceForm(steps: t, stepFeatures: d)
        default: throw APIError.invalid("sequence_length and step_features go together: give both or neither")
        }
    }

    /// The form of query parameters `sequence_length` and `step_features` (CSV and NDJSON uploads).
    static func declared(query request: (String) -> String?) throws -> SequenceForm? {
        func int(_ name: String) throws -> Int? {
            guard let text = request(name) else { return nil }
            guard let v = Int(text) else { throw APIError.invalid("\(name) must be a positive integer, not \(text)") }
            return v
        }
        return try declared(sequenceLength: try int("sequence_length"), stepFeatures: try int("step_features"))
    }

    /// Merges a declared form with the one nested features imply; they must agree.
    static func merge(declared: SequenceForm?, nested: SequenceForm?, where place: String) throws -> SequenceForm? {
        // Nested steps are held to the limits of a declared form (the shape a sequence model may read).
        if let nested, nested.steps > 10_000 || nested.stepFeatures > Self.maxStepFeatures {
            throw APIError.invalid("\(place) has \(nested.description) numbers; a sequence has at most 10000 steps "
                + "of at most \(Self.maxStepFeatures) numbers")
        }
        if let declared, let nested, declared != nested {
            throw APIError.invalid("\(place) has \(nested.description) numbers but sequence_length/step_features declare \(declared.description)")
        }
        return declared ?? nested
    }
}

/// A label as uploaded: one class per example, or an array of one class per step (null: no
/// target at that step).
enum UploadedLabel: Decodable, Equatable {
    case one(Double)
    case perStep([Double?])

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let v = try? c.decode(Double.self) { self = .one(v); return }
        if let a = try? c.decode([Double?].self) { self = .perStep(a); return }
        throw DecodingError.typeMismatch(Double.self, DecodingError.Context(
            codingPath: decoder.codingPath,
            debugDescription: "a label is a non-negative integer, or an array with one per step (null for no target)"))
    }

    /// The stored labels of example `row` (1-based, for messages): one class, or T per step with −1
    /// for steps without a target.
    func values(form: SequenceForm?, row: Int) throws -> [Int] {
        switch self {
        case .one(let v):
            return [try DatasetUpload.integerLabel(v, row: row)]
        case .perStep(let steps):
            guard let form else {
                throw APIError.invalid("row \(row): per-step labels need a sequence dataset (give sequence_length and step_features, or nested features)")
            }
            guard steps.count == form.steps else {
                throw APIError.invalid("row \(row) has \(steps.count) per-step labels but the sequences have \(form.steps) steps")
            }
            let labels = try steps.enumerated().map { s, v in
                try v.map { try DatasetUpload.integerLabel($0, row: row, step: s) } ?? -1
            }
            guard labels.contains(where: { $0 >= 0 }) else { throw APIError.invalid("row \(row): every step's label is null; no target to learn") }
            return labels
        }
    }
}
