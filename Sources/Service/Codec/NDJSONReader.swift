// NDJSONReader: reads a request body line by line as it arrives, one parsed example at a time.
import Foundation
import HTTP
import PFC

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
///
/// The common line, `{"label": 3, "features": [0, 0.5, 1e-3]}` (the two keys once each, in either
/// order, a flat array of JSON numbers, an integer label), is read by a byte-level fast path
/// (`NDJSONFastLine`) that gives exactly the values the decoder would (`Float(Double(text))`); every
/// other line, including every malformed one, goes through `JSONCoding.decode`, so errors and
/// unusual forms (nested steps, per-step labels, escapes) are those of the strict decoder.
enum NDJSONReader {
    /// A line that is not JSON is 400 `invalid_ndjson` (as for `invalid_json`); a JSON line whose values
    /// do not fit (a missing label, a string feature) is 422. Both name the line.
    static func lineError(_ e: HTTPError, line: Int) -> HTTPError {
        e.status == .badRequest ? APIError.badRequest("NDJSON line \(line): \(e.message)", code: "invalid_ndjson")
            : APIError.invalid("NDJSON line \(line): \(e.message)")
    }

    /// One line, read either way.
    enum Line {
        /// A fast-path line: its label and features (valid only during the call).
        case flat(label: Int, features: UnsafeBufferPointer<Float>)
        /// Any other line, decoded by `JSONCoding.decode`.
        case decoded(NDJSONExample)
    }

    /// Calls `body(example, lineNumber)` for every non-blank line; errors name the line.
    static func forEachExample(in requestBody: RequestBody, maxBytes: Int,
                               _ body: (NDJSONExample, Int) throws -> Void) throws {
        try forEachLine(in: requestBody, maxBytes: maxBytes, fastPath: false) { line, number in
            guard case .decoded(let example) = line else { return }
            try body(example, number)
        }
    }

    /// Calls `body(line, lineNumber)` for every non-blank line, common lines through the fast path
    /// when `fastPath`; errors name the line.
    static func forEachLine(in requestBody: RequestBody, maxBytes: Int, fastPath: Bool = true,
                            _ body: (Line, Int) throws -> Void) throws {
        var pending: [UInt8] = []
        var line = 0, total = 0
        var values: [Float] = []
        func handle(_ bytes: UnsafeBufferPointer<UInt8>) throws {
            line += 1
            if bytes.allSatisfy({ $0 == 32 || $0 == 9 || $0 == 13 }) { return }
            if fastPath, let label = NDJSONFastLine.parse(bytes, into: &values) {
                try values.withUnsafeBufferPointer { try body(.flat(label: label, features: $0), line) }
                return
            }
            let parsed: NDJSONExample
            do { parsed = try JSONCoding.decode(NDJSONExample.self, from: Data(buffer: bytes)) } catch let e as HTTPError {
                throw NDJSONReader.lineError(e, line: line)
            }
            try body(.decoded(parsed), line)
        }
        func feed(_ chunk: [UInt8]) throws {
            total += chunk.count
            if total > maxBytes { throw HTTPError(.contentTooLarge, message: "the body exceeds \(maxBytes) bytes") }
            try chunk.withUnsafeBufferPointer { c in
                guard let base = c.baseAddress else { return }
                let n = c.count
                var start = 0
                while start < n, let hit = memchr(base + start, 10, n - start) {
                    let nl = base.distance(to: hit.assumingMemoryBound(to: UInt8.self))
                    if pending.isEmpty {
                        try handle(UnsafeBufferPointer(start: base + start, count: nl - start))
                    } else {
                        pending.append(contentsOf: UnsafeBufferPointer(start: base + start, count: nl - start))
                        let whole = pending
                        pending.removeAll(keepingCapacity: true)
                        try whole.withUnsafeBufferPointer { try handle($0) }
                    }
                    start = nl + 1
                }
                if start < n { pending.append(contentsOf: UnsafeBufferPointer(start: base + start, count: n - start)) }
            }
            if pending.count > 16 << 20 { throw APIError.invalid("NDJSON line \(line + 1) is longer than 16 MiB") }
        }
        switch requestBody {
        case .bytes(let b): try feed(b)
        case .stream(let s): while let chunk = try s.next() { try feed(chunk) }
        case .pushed: throw APIError.invalid("internal: a pushed body is read by its consumer")
        }
        if !pending.isEmpty { try pending.withUnsafeBufferPointer { try handle($0) } }
    }
}

/// The fast path of `NDJSONReader`: `{"label": <int>, "features": [<number>, …]}` with the keys in
/// either order and JSON whitespace anywhere between tokens. Returns nil for anything else (the
/// caller then runs the strict decoder), so it never accepts a line the decoder would refuse, nor
/// reads a value differently: numbers follow JSON's grammar exactly and are converted only when
/// Clinger's fast path makes the Double exact (then `Float(double)`, as the decoder's `[Double]`
/// becomes `[Float]`); the label is 1–9 digits without a leading zero.
enum NDJSONFastLine {
    static func parse(_ line: UnsafeBufferPointer<UInt8>, into values: inout [Float]) -> Int? {
        guard let p = line.baseAddress else { return nil }
        let n = line.count
        var i = 0
        @inline(__always) func skip() { while i < n, p[i] == 0x20 || p[i] == 0x09 || p[i] == 0x0D || p[i] == 0x0A { i += 1 } }
        @inline(__always) func take(_ b: UInt8) -> Bool {
            skip()
            guard i < n, p[i] == b else { return false }
            i += 1
            return true
        }
        /// `"label"` or `"features"`: 1 or 2, nil otherwise.
        func key() -> Int? {
            guard take(0x22) else { return nil }
            let start = i
            while i < n, p[i] != 0x22 { if p[i] == 0x5C || p[i] >= 0x80 { return nil }; i += 1 }
            guard i < n else { return nil }
            let k = UnsafeBufferPointer(start: p + start, count: i - start)
            i += 1
            if k.elementsEqual("label".utf8) { return 1 }
            if k.elementsEqual("features".utf8) { return 2 }
            return nil
        }
        guard take(0x7B) else { return nil }
        var label: Int?, sawFeatures = false
        values.removeAll(keepingCapacity: true)
        for member in 0..<2 {
            if member == 1 { guard take(0x2C) else { return nil } }
            guard let k = key(), take(0x3A) else { return nil }
            skip()
            if k == 1 {
                guard label == nil else { return nil }
                let start = i
                while i < n, p[i] &- 0x30 < 10 { i += 1 }
                let digits = i - start
                guard digits >= 1, digits <= 9, digits == 1 || p[start] != 0x30 else { return nil }
                if i < n, p[i] == 0x2E || p[i] == 0x65 || p[i] == 0x45 { return nil }
                var v = 0
                for j in start..<i { v = v * 10 + Int(p[j] &- 0x30) }
                label = v
            } else {
                guard !sawFeatures, take(0x5B) else { return nil }
                sawFeatures = true
                skip()
                if i < n, p[i] == 0x5D { return nil }  // empty: the decoder's message
                while true {
                    skip()
                    let start = i
                    guard let end = jsonNumberEnd(p, from: i, count: n),
                          let v = CSVRowParser.double(p + start, count: end - start) else { return nil }
                    values.append(Float(v))
                    i = end
                    skip()
                    guard i < n else { return nil }
                    if p[i] == 0x2C { i += 1; continue }
                    if p[i] == 0x5D { i += 1; break }
                    return nil
                }
            }
        }
        guard take(0x7D) else { return nil }
        skip()
        guard i == n, let label else { return nil }
        return label
    }

    /// The end of the JSON number starting at `i` (`-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?`), nil when none.
    @inline(__always)
    static func jsonNumberEnd(_ p: UnsafePointer<UInt8>, from start: Int, count n: Int) -> Int? {
        var i = start
        if i < n, p[i] == 0x2D { i += 1 }
        guard i < n, p[i] &- 0x30 < 10 else { return nil }
        if p[i] == 0x30 { i += 1 } else { while i < n, p[i] &- 0x30 < 10 { i += 1 } }
        if i < n, p[i] == 0x2E {
            i += 1
            let f = i
            while i < n, p[i] &- 0x30 < 10 { i += 1 }
            guard i > f else { return nil }
        }
        if i < n, p[i] == 0x65 || p[i] == 0x45 {
            i += 1
            if i < n, p[i] == 0x2B || p[i] == 0x2D { i += 1 }
            let e = i
            while i < n, p[i] &- 0x30 < 10 { i += 1 }
            guard i > e else { return nil }
        }
        return i
    }
}
