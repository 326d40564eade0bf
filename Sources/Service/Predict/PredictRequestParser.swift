// PredictRequestParser: the common predict body read in one pass (issue 15, the per-request work
// outside FISTA). `{"inputs": [[numbers…], …], "top": n, "version": n, "every_step": bool}`, each
// key at most once, flat rows: exactly what `JSONCoding.decode(PredictRequest.self, …)` would
// make of it (numbers rounded as the decoder rounds them: correctly, to Double, then to Float).
// Anything else (another key, nested rows, null, an escape, a number the fast path does not take,
// malformed JSON) returns nil and the general decoder reads the body, with its error messages.
import Foundation

/// A predict body: from the fast parser or from `PredictRequest`.
struct PredictBody {
    var inputs: [[Float]]
    var version: Int?
    var top: Int?
    var everyStep: Bool?
    /// T steps × d numbers when the examples were nested (only the general decoder reads those).
    var nestedForm: SequenceForm?

    init(inputs: [[Float]], version: Int?, top: Int?, everyStep: Bool?, nestedForm: SequenceForm?) {
        self.inputs = inputs
        self.version = version
        self.top = top
        self.everyStep = everyStep
        self.nestedForm = nestedForm
    }

    init(_ r: PredictRequest) {
        self.init(inputs: r.inputs, version: r.version, top: r.top, everyStep: r.everyStep, nestedForm: r.rows.nestedForm)
    }
}

enum PredictRequestParser {
    /// The body, or nil when the general decoder must read it.
    static func parse(_ bytes: [UInt8]) -> PredictBody? {
        bytes.withUnsafeBufferPointer { buf -> PredictBody? in
            var p = Reader(buf)
            return p.body()
        }
    }

    /// Powers of ten exact in a Double (Clinger's fast path).
    static let exactPowers: [Double] = (0...22).map { e in (0..<e).reduce(1.0) { a, _ in a * 10 } }

    struct Reader {
        let b: UnsafeBufferPointer<UInt8>
        var i = 0
        init(_ b: UnsafeBufferPointer<UInt8>) { self.b = b }

        @inline(__always) mutating func skipSpace() {
            while i < b.count {
                let c = b[i]
                guard c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 else { return }
                i += 1
            }
        }

        @inline(__always) mutating func eat(_ c: UInt8) -> Bool {
            skipSpace()
            guard i < b.count, b[i] == c else { return false }
            i += 1
            return true
        }

        @inline(__always) func peek() -> UInt8? { i < b.count ? b[i] : nil }

        /// A key without escapes.
        mutating func key() -> String? {
            guard eat(UInt8(ascii: "\"")) else { return nil }
            let start = i
            while i < b.count, b[i] != UInt8(ascii: "\"") {
                if b[i] == UInt8(ascii: "\\") || b[i] < 0x20 || b[i] >= 0x80 { return nil }
                i += 1
            }
            guard i < b.count else { return nil }
            let k = String(decoding: UnsafeBufferPointer(rebasing: b[start..<i]), as: UTF8.self)
            i += 1
            return k
        }

        mutating func body() -> PredictBody? {
            guard eat(UInt8(ascii: "{")) else { return nil }
            var inputs: [[Float]]?, version: Int?, top: Int?, everyStep: Bool?
            var first = true
            while true {
                if eat(UInt8(ascii: "}")) { break }
                if !first { guard eat(UInt8(ascii: ",")) else { return nil } }
                first = false
                guard let k = key(), eat(UInt8(ascii: ":")) else { return nil }
                skipSpace()
                switch k {
                case "inputs":
                    guard inputs == nil, let v = rows() else { return nil }
                    inputs = v
                case "version":
                    guard version == nil, let v = integer() else { return nil }
                    version = v
                case "top":
                    guard top == nil, let v = integer() else { return nil }
                    top = v
                case "every_step":
                    guard everyStep == nil, let v = boolean() else { return nil }
                    everyStep = v
                default:
                    return nil
                }
            }
            skipSpace()
            guard i == b.count, let inputs else { return nil }
            return PredictBody(inputs: inputs, version: version, top: top, everyStep: everyStep, nestedForm: nil)
        }

        mutating func rows() -> [[Float]]? {
            guard eat(UInt8(ascii: "[")) else { return nil }
            var out: [[Float]] = []
            if eat(UInt8(ascii: "]")) { return out }
            var width = 0
            repeat {
                guard eat(UInt8(ascii: "[")) else { return nil }
                var row: [Float] = []
                row.reserveCapacity(width)
                if !eat(UInt8(ascii: "]")) {
                    repeat {
                        skipSpace()
                        guard let v = number() else { return nil }
                        row.append(v)
                    } while eat(UInt8(ascii: ","))
                    guard eat(UInt8(ascii: "]")) else { return nil }
                }
                width = row.count
                out.append(row)
            } while eat(UInt8(ascii: ","))
            guard eat(UInt8(ascii: "]")) else { return nil }
            return out
        }

        mutating func boolean() -> Bool? {
            func word(_ w: StaticString) -> Bool {
                let n = w.utf8CodeUnitCount
                guard i + n <= b.count else { return false }
                for j in 0..<n where b[i + j] != w.utf8Start[j] { return false }
                i += n
                return true
            }
            if word("true") { return true }
            if word("false") { return false }
            return nil
        }

        /// A plain integer of up to 15 digits (others: the general decoder).
        mutating func integer() -> Int? {
            var j = i, neg = false
            if j < b.count, b[j] == UInt8(ascii: "-") { neg = true; j += 1 }
            let start = j
            var v = 0
            while j < b.count, b[j] >= 0x30, b[j] <= 0x39 {
                if j - start < 15 { v = v * 10 + Int(b[j] - 0x30) }
                j += 1
            }
            let digits = j - start
            guard digits > 0, digits <= 15, !(digits > 1 && b[start] == 0x30) else { return nil }
            if j < b.count, b[j] == UInt8(ascii: ".") || b[j] == UInt8(ascii: "e") || b[j] == UInt8(ascii: "E") { return nil }
            i = j
            return neg ? -v : v
        }

        /// A JSON number as the decoder reads it into a Float field: correctly rounded to Double,
        /// then to Float. nil for what is not a JSON number, or not finite as a Double.
        mutating func number() -> Float? {
            let start = i
            var j = i
            var neg = false
            if j < b.count, b[j] == UInt8(ascii: "-") { neg = true; j += 1 }
            var mantissa: UInt64 = 0
            var significant = 0  // digits in the mantissa (after leading zeros)
            var exp10 = 0
            let intStart = j
            while j < b.count, b[j] >= 0x30, b[j] <= 0x39 {
                if significant < 19 {
                    mantissa = mantissa * 10 + UInt64(b[j] - 0x30)
                    if mantissa > 0 { significant += 1 }
                } else {
                    exp10 += 1
                    significant += 1
                }
                j += 1
            }
            let intDigits = j - intStart
            guard intDigits > 0, !(intDigits > 1 && b[intStart] == 0x30) else { return nil }
            if j < b.count, b[j] == UInt8(ascii: ".") {
                j += 1
                let fracStart = j
                while j < b.count, b[j] >= 0x30, b[j] <= 0x39 {
                    if significant < 19 {
                        mantissa = mantissa * 10 + UInt64(b[j] - 0x30)
                        if mantissa > 0 { significant += 1 }
                        exp10 -= 1
                    } else {
                        significant += 1
                    }
                    j += 1
                }
                guard j > fracStart else { return nil }
            }
            if j < b.count, b[j] == UInt8(ascii: "e") || b[j] == UInt8(ascii: "E") {
                j += 1
                var eneg = false
                if j < b.count, b[j] == UInt8(ascii: "+") || b[j] == UInt8(ascii: "-") { eneg = b[j] == UInt8(ascii: "-"); j += 1 }
                let eStart = j
                var e = 0
                while j < b.count, b[j] >= 0x30, b[j] <= 0x39 {
                    if e < 100_000 { e = e * 10 + Int(b[j] - 0x30) }
                    j += 1
                }
                guard j > eStart else { return nil }
                exp10 += eneg ? -e : e
            }
            i = j
            let d: Double
            if significant <= 15 && mantissa < (1 << 53) && abs(exp10) <= 22 {
                // Exact mantissa and power of ten: one correctly rounded operation.
                let m = Double(mantissa)
                d = exp10 >= 0 ? m * PredictRequestParser.exactPowers[exp10] : m / PredictRequestParser.exactPowers[-exp10]
            } else {
                guard let parsed = Double(String(decoding: UnsafeBufferPointer(rebasing: b[start..<j]), as: UTF8.self)) else { return nil }
                // Overflow and underflow: left to the decoder (and its messages).
                guard parsed.isFinite, parsed == 0 ? mantissa == 0 : parsed.isNormal else { return nil }
                return Float(parsed)
            }
            return Float(neg ? -d : d)
        }
    }
}
