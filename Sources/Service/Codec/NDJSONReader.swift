// NDJSONReader: reads a request body line by line as it arrives, one parsed example at a time.
import Foundation
import HTTP

/// One NDJSON example line: `{"features": [number] or [[number]] (T steps of d), "label": int or
/// [int or null] (one per step)}`.
struct NDJSONExample: Decodable {
    var features: [Double]
    var label: UploadedLabel
    /// T × d when the features were nested steps.
    var nestedForm: SequenceForm?

    enum CodingKeys: String, CodingKey { case features, label }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        label = try c.decode(UploadedLabel.self, forKey: .label)
        if let flat = try? c.decode([Double].self, forKey: .features) {
            features = flat
        } else {
            let steps = try c.decode([[Double]].self, forKey: .features)
            if let d = steps.first?.count, let bad = steps.firstIndex(where: { $0.count != d }) {
                throw DecodingError.dataCorruptedError(forKey: .features, in: c,
                    debugDescription: "step \(bad) has \(steps[bad].count) numbers, the first step \(d)")
            }
            features = steps.flatMap { $0 }
            if let d = steps.first?.count, d > 0 { nestedForm = SequenceForm(steps: steps.count, stepFeatures: d) }
        }
    }
}

/// Splits a (possibly streamed) body into lines and decodes each as an `NDJSONExample`, so memory
/// stays bounded by one line (16 MiB at most) however long the body is.
enum NDJSONReader {
    /// A line that is not JSON is 400 `invalid_ndjson` (as for `invalid_json`); a JSON line whose values
    /// do not fit (a missing label, a string feature) is 422. Both name the line.
    static func lineError(_ e: HTTPError, line: Int) -> HTTPError {
        e.status == .badRequest ? APIError.badRequest("NDJSON line \(line): \(e.message)", code: "invalid_ndjson")
            : APIError.invalid("NDJSON line \(line): \(e.message)")
    }

    /// Calls `body(example, lineNumber)` for every non-blank line; errors name the line.
    static func forEachExample(in requestBody: RequestBody, maxBytes: Int,
                               _ body: (NDJSONExample, Int) throws -> Void) throws {
        var pending: [UInt8] = []
        var line = 0, total = 0
        func handle(_ bytes: ArraySlice<UInt8>) throws {
            line += 1
            if bytes.allSatisfy({ $0 == 32 || $0 == 9 || $0 == 13 }) { return }
            let parsed: NDJSONExample
            do { parsed = try JSONCoding.decode(NDJSONExample.self, from: Data(bytes)) } catch let e as HTTPError {
                throw NDJSONReader.lineError(e, line: line)
            }
            try body(parsed, line)
        }
        func feed(_ chunk: [UInt8]) throws {
            total += chunk.count
            if total > maxBytes { throw HTTPError(.contentTooLarge, message: "the body exceeds \(maxBytes) bytes") }
            pending.append(contentsOf: chunk)
            var start = 0
            while let nl = pending[start...].firstIndex(of: 10) {
                try handle(pending[start..<nl])
                start = nl + 1
            }
            pending.removeFirst(start)
            if pending.count > 16 << 20 { throw APIError.invalid("NDJSON line \(line + 1) is longer than 16 MiB") }
        }
        switch requestBody {
        case .bytes(let b): try feed(b)
        case .stream(let s): while let chunk = try s.next() { try feed(chunk) }
        case .pushed: throw APIError.invalid("internal: a pushed body is read by its consumer")
        }
        if !pending.isEmpty { try handle(pending[...]) }
    }
}
