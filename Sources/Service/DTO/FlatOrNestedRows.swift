// FlatOrNestedRows: example rows given flat ([number]) or as sequence steps ([[number]]).
import Foundation

/// Decodes `[[number]]` (one flat row per example) or `[[[number]]]` (each example as T steps of d
/// numbers), flattening the nested form step after step, the layout recurrent models read.
struct FlatOrNestedRows: Decodable {
    var rows: [[Double]]
    /// T steps × d numbers when the examples were nested (every example has the same shape).
    var nestedForm: SequenceForm?

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let flat = try? c.decode([[Double]].self) {
            rows = flat
            return
        }
        let nested: [[[Double]]]
        do { nested = try c.decode([[[Double]]].self) } catch {
            throw DecodingError.typeMismatch([[Double]].self, DecodingError.Context(
                codingPath: decoder.codingPath,
                debugDescription: "expected rows of numbers, or rows of steps of numbers"))
        }
        let form = SequenceForm(steps: nested.first?.count ?? 0, stepFeatures: nested.first?.first?.count ?? 0)
        for (i, steps) in nested.enumerated() {
            if let d = steps.first?.count, let bad = steps.firstIndex(where: { $0.count != d }) {
                throw DecodingError.dataCorrupted(DecodingError.Context(
                    codingPath: decoder.codingPath,
                    debugDescription: "example \(i) step \(bad) has \(steps[bad].count) numbers, its first step \(d)"))
            }
            let shape = SequenceForm(steps: steps.count, stepFeatures: steps.first?.count ?? 0)
            if shape != form {
                throw DecodingError.dataCorrupted(DecodingError.Context(
                    codingPath: decoder.codingPath,
                    debugDescription: "example \(i) has \(shape.description) numbers but example 0 has \(form.description)"))
            }
        }
        rows = nested.map { $0.flatMap { $0 } }
        nestedForm = form.steps > 0 && form.stepFeatures > 0 ? form : nil
    }
}
