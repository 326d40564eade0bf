// PredictJSON: the predict answer written straight into bytes (issue 15, the per-request work
// outside FISTA). `JSONEncoder` with sorted, snake-cased keys spends more on one small answer (ten
// outputs, five explanations) than the batched FISTA spends on its row; this writer produces the
// same bytes (`PredictJSONTests` compares them with `JSONCoding.apiEncoder`'s).
import Foundation

enum PredictJSON {
    /// The bytes `JSONCoding.apiEncoder` makes of `r` (sorted keys, snake case, floats as their
    /// shortest description without a trailing ".0"); nil when a number is not finite (the encoder
    /// would throw).
    static func encode(_ r: PredictResponse) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(64 + r.outputs.count * (r.outputs.first?.count ?? 0) * 12 + r.explanations.count * 400)
        func ascii(_ s: StaticString) {
            s.withUTF8Buffer { out.append(contentsOf: $0) }
        }
        func int(_ v: Int) { out.append(contentsOf: String(v).utf8) }
        func float(_ v: Float) -> Bool {
            guard v.isFinite else { return false }
            let s = v.description
            if s.hasSuffix(".0") { out.append(contentsOf: s.utf8.dropLast(2)) } else { out.append(contentsOf: s.utf8) }
            return true
        }
        ascii("{\"explanations\":[")
        for (i, row) in r.explanations.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            out.append(UInt8(ascii: "["))
            for (j, e) in row.enumerated() {
                if j > 0 { out.append(UInt8(ascii: ",")) }
                ascii("{\"activation\":")
                guard float(e.activation) else { return nil }
                ascii(",\"block\":")
                int(e.block)
                ascii(",\"component\":")
                int(e.component)
                ascii(",\"contribution\":")
                guard float(e.contribution) else { return nil }
                out.append(UInt8(ascii: "}"))
            }
            out.append(UInt8(ascii: "]"))
        }
        ascii("],\"model_version\":")
        int(r.modelVersion)
        ascii(",\"outputs\":[")
        for (i, row) in r.outputs.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            out.append(UInt8(ascii: "["))
            for (j, v) in row.enumerated() {
                if j > 0 { out.append(UInt8(ascii: ",")) }
                guard float(v) else { return nil }
            }
            out.append(UInt8(ascii: "]"))
        }
        ascii("],\"predictions\":[")
        for (i, p) in r.predictions.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            int(p)
        }
        out.append(UInt8(ascii: "]"))
        if let steps = r.stepPredictions {
            ascii(",\"step_predictions\":[")
            for (i, row) in steps.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                out.append(UInt8(ascii: "["))
                for (j, p) in row.enumerated() {
                    if j > 0 { out.append(UInt8(ascii: ",")) }
                    int(p)
                }
                out.append(UInt8(ascii: "]"))
            }
            out.append(UInt8(ascii: "]"))
        }
        out.append(UInt8(ascii: "}"))
        return out
    }
}
