// CSVDatasetReader: reads `label,feature1,…,featureD` rows with validation that names file and line.
import Foundation
import Linalg

/// A problem in a data file, located by file, line and (when known) column.
public struct DatasetError: Error, CustomStringConvertible, Sendable, Equatable {
    /// File name or source label.
    public var source: String
    /// 1-based line (or row) number.
    public var line: Int
    /// 1-based column, when the problem is in one field.
    public var column: Int?
    /// What is wrong.
    public var reason: String

    public var description: String {
        "\(source):\(line)\(column.map { ":\($0)" } ?? ""): \(reason)"
    }
}

/// Reads CSV data sets: one example per line, first field the integer label, then the features.
/// A first line whose label field is not a number is taken as a header and skipped.
public enum CSVDatasetReader {
    /// Options of validation.
    public struct Rules: Sendable {
        /// Reject negative features (a non-negative PFC model will train on them).
        public var requireNonNegative: Bool
        /// Labels must be below this, when given (the model's class count).
        public var classes: Int?
        /// Every row must have this many features, when given.
        public var featureCount: Int?

        /// Rules; all checks off except finiteness, integrality and raggedness.
        public init(requireNonNegative: Bool = false, classes: Int? = nil, featureCount: Int? = nil) {
            self.requireNonNegative = requireNonNegative
            self.classes = classes
            self.featureCount = featureCount
        }
    }

    /// Reads and validates the file at `path`.
    public static func read(path: String, rules: Rules = Rules()) throws -> LabeledDataset {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw DatasetError(source: path, line: 0, column: nil, reason: "cannot read the file")
        }
        return try parse(data, source: (path as NSString).lastPathComponent, rules: rules)
    }

    /// Parses CSV bytes; `source` names the input in errors.
    public static func parse(_ data: Data, source: String, rules: Rules = Rules()) throws -> LabeledDataset {
        var parser = CSVRowParser(source: source, rules: rules)
        var features = [Float]()
        var labels = [Int]()
        let emit: (Int, UnsafeBufferPointer<Float>, Int) throws -> Void = { label, row, _ in
            labels.append(label)
            features.append(contentsOf: row)
        }
        try data.withUnsafeBytes { try parser.consume($0, emit: emit) }
        try parser.finish(emit: emit)
        guard let d = parser.width, !labels.isEmpty else {
            throw DatasetError(source: source, line: max(1, parser.lineNumber), column: nil, reason: "the file has no examples")
        }
        return LabeledDataset(features: Matrix(rows: labels.count, cols: d, storage: features), labels: labels,
                              classes: rules.classes)
    }
}

/// An incremental CSV reader over bytes (`label,feature1,…,featureD` per line): feed it chunks as they
/// arrive and it hands over each validated row, so memory stays bounded by one line. Lines end with
/// `\n`, `\r\n` or `\r`; blank lines are skipped; a first line whose label is not a number is a header;
/// fields may carry spaces or tabs around them. Numbers of the plain decimal form (`-12.5e-3`) with at
/// most 7 significant digits and a small exponent are converted exactly by Clinger's fast path (one
/// correctly rounded Float operation); anything else goes through `Float(String)`, so every value
/// reads exactly as `Float(_:)` reads it.
public struct CSVRowParser {
    /// Names the input in errors.
    public let source: String
    /// Validation rules.
    public let rules: Rules
    public typealias Rules = CSVDatasetReader.Rules
    /// Features per row, once the first row was read (or `rules.featureCount`).
    public private(set) var width: Int?
    /// Lines seen so far (1-based number of the last line read).
    public private(set) var lineNumber = 0
    /// Rows handed over so far.
    public private(set) var rows = 0
    private var sawData = false
    private var carry: [UInt8] = []
    private var lastWasCR = false
    /// Longest line read, in bytes (16 MiB, as NDJSON uploads): a longer one is refused before its
    /// bytes and features pile up in memory.
    public static let maxLineBytes = 16 << 20
    private var row: [Float] = []

    /// A reader with `rules`; `source` names the input in errors.
    public init(source: String, rules: Rules = Rules()) {
        self.source = source
        self.rules = rules
        self.width = rules.featureCount
    }

    /// Reads every complete line of `chunk` (after what an earlier chunk left unfinished), calling
    /// `emit(label, features, line)` per row. The features buffer is valid only during the call.
    public mutating func consume(_ chunk: UnsafeRawBufferPointer, emit: (Int, UnsafeBufferPointer<Float>, Int) throws -> Void) throws {
        guard let base = chunk.baseAddress?.assumingMemoryBound(to: UInt8.self), chunk.count > 0 else { return }
        let n = chunk.count
        var i = 0
        if lastWasCR {
            lastWasCR = false
            if base[0] == 0x0A { i = 1 }  // the \n of a \r\n split across chunks
        }
        var lineStart = i
        while i < n {
            let b = base[i]
            if b == 0x0A || b == 0x0D {
                if carry.isEmpty {
                    try line(UnsafeBufferPointer(start: base + lineStart, count: i - lineStart), emit: emit)
                } else {
                    carry.append(contentsOf: UnsafeBufferPointer(start: base + lineStart, count: i - lineStart))
                    let whole = carry
                    carry.removeAll(keepingCapacity: true)
                    try whole.withUnsafeBufferPointer { try line($0, emit: emit) }
                }
                if b == 0x0D {
                    if i + 1 < n { if base[i + 1] == 0x0A { i += 1 } } else { lastWasCR = true }
                }
                i += 1
                lineStart = i
            } else {
                i += 1
            }
        }
        if lineStart < n {
            guard carry.count + (n - lineStart) <= Self.maxLineBytes else {
                throw DatasetError(source: source, line: lineNumber + 1, column: nil, reason: "the line is longer than 16 MiB")
            }
            carry.append(contentsOf: UnsafeBufferPointer(start: base + lineStart, count: n - lineStart))
        }
    }

    /// Reads the last line when the input does not end with a newline.
    public mutating func finish(emit: (Int, UnsafeBufferPointer<Float>, Int) throws -> Void) throws {
        guard !carry.isEmpty else { return }
        let whole = carry
        carry.removeAll()
        try whole.withUnsafeBufferPointer { try line($0, emit: emit) }
    }

    private func fail(_ column: Int?, _ reason: String) -> DatasetError {
        DatasetError(source: source, line: lineNumber, column: column, reason: reason)
    }

    private static func isBlank(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 }

    private mutating func line(_ bytes: UnsafeBufferPointer<UInt8>, emit: (Int, UnsafeBufferPointer<Float>, Int) throws -> Void) throws {
        lineNumber += 1
        guard bytes.count <= Self.maxLineBytes else { throw fail(nil, "the line is longer than 16 MiB") }
        guard let p = bytes.baseAddress, bytes.contains(where: { !Self.isBlank($0) }) else { return }
        if bytes.contains(where: { $0 >= 0x80 }) {
            // Only non-ASCII lines pay for validation; numbers are ASCII, so such a line fails below anyway.
            guard String(validating: bytes, as: UTF8.self) != nil else { throw fail(nil, "the file is not UTF-8 text") }
        }
        let n = bytes.count
        // Field boundaries, trimmed of spaces and tabs.
        func field(_ start: Int) -> (lo: Int, hi: Int, next: Int) {
            var end = start
            while end < n && p[end] != 0x2C { end += 1 }
            var lo = start, hi = end
            while lo < hi && Self.isBlank(p[lo]) { lo += 1 }
            while hi > lo && Self.isBlank(p[hi - 1]) { hi -= 1 }
            return (lo, hi, end + 1)
        }
        func text(_ lo: Int, _ hi: Int) -> String { String(decoding: UnsafeBufferPointer(start: p + lo, count: hi - lo), as: UTF8.self) }

        let first = field(0)
        let labelValue = Self.double(p + first.lo, count: first.hi - first.lo) ?? Double(text(first.lo, first.hi))
        if !sawData && labelValue == nil {
            sawData = true  // header row
            return
        }
        sawData = true
        let labelText = text(first.lo, first.hi)
        guard let labelValue else { throw fail(1, "label '\(labelText)' is not a number") }
        // Int(exactly:) never traps (a label ≥ 2⁶³ used to abort the process); the bound is shared
        // with the JSON and NDJSON readers.
        guard labelValue.isFinite, labelValue >= 0, labelValue == labelValue.rounded() else {
            throw fail(1, "label '\(labelText)' is not a non-negative integer")
        }
        guard labelValue < Double(LabeledDataset.labelLimit), let label = Int(exactly: labelValue) else {
            throw fail(1, "label \(labelText) is too large: labels must be below \(LabeledDataset.labelLimit)")
        }
        if let c = rules.classes, label >= c {
            throw fail(1, "label \(label) is out of range: the model has \(c) classes (0…\(c - 1))")
        }
        if first.next > n { throw fail(nil, "the row has a label but no features") }
        row.removeAll(keepingCapacity: true)
        var next = first.next
        var column = 2
        while next <= n {
            // The fused fast path reads the field and its number in one pass; anything unusual
            // (many digits, a large exponent, inf, hex, a stray character) re-reads it below.
            if let (fast, after) = Self.fastField(p, from: next, count: n) {
                if rules.requireNonNegative && fast < 0 {
                    let f = field(next)
                    throw fail(column, "negative feature \(text(f.lo, f.hi)): a non-negative PFC model needs features ≥ 0")
                }
                row.append(fast)
                next = after
                column += 1
                continue
            }
            let f = field(next)
            let v: Float
            if let fast = Self.float(p + f.lo, count: f.hi - f.lo) {
                v = fast
            } else {
                let s = text(f.lo, f.hi)
                guard let slow = Float(s) else { throw fail(column, "'\(s)' is not a number") }
                guard slow.isFinite else { throw fail(column, "'\(s)' is not a finite number") }
                v = slow
            }
            if rules.requireNonNegative && v < 0 {
                throw fail(column, "negative feature \(text(f.lo, f.hi)): a non-negative PFC model needs features ≥ 0")
            }
            row.append(v)
            next = f.next
            column += 1
        }
        if let w = width, w != row.count {
            throw fail(nil, "the row has \(row.count) features, expected \(w) (ragged rows)")
        }
        width = row.count
        rows += 1
        try row.withUnsafeBufferPointer { try emit(label, $0, lineNumber) }
    }

    private static let exactPowers: [Float] = [1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10]

    /// 10^e for 0 ≤ e ≤ 22, exact in a Double (5²² < 2⁵³).
    @inline(__always)
    static func exactDoublePower(_ e: Int) -> Double {
        switch e {
        case 0: 1
        case 1: 1e1
        case 2: 1e2
        case 3: 1e3
        case 4: 1e4
        case 5: 1e5
        case 6: 1e6
        case 7: 1e7
        case 8: 1e8
        case 9: 1e9
        case 10: 1e10
        case 11: 1e11
        case 12: 1e12
        case 13: 1e13
        case 14: 1e14
        case 15: 1e15
        case 16: 1e16
        case 17: 1e17
        case 18: 1e18
        case 19: 1e19
        case 20: 1e20
        case 21: 1e21
        default: 1e22
        }
    }

    /// 10^e for 0 ≤ e ≤ 10, exact in a Float (5¹⁰ < 2²⁴).
    @inline(__always)
    static func exactPower(_ e: Int) -> Float {
        switch e {
        case 0: 1
        case 1: 1e1
        case 2: 1e2
        case 3: 1e3
        case 4: 1e4
        case 5: 1e5
        case 6: 1e6
        case 7: 1e7
        case 8: 1e8
        case 9: 1e9
        default: 1e10
        }
    }

    /// The feature field starting at `start` (blanks around it allowed) when it is a plain decimal
    /// `[+-]digits[.digits][(e|E)[+-]digits]` within Clinger's fast path (mantissa < 2²⁴,
    /// |exponent| ≤ 10: one correctly rounded operation on exact operands, so the value equals
    /// `strtof`'s); returns the value and the index after the field's comma (n + 1 at the end of the
    /// line). nil for anything else: the caller re-reads the field the slow way.
    @inline(__always)
    static func fastField(_ p: UnsafePointer<UInt8>, from start: Int, count n: Int) -> (Float, Int)? {
        var i = start
        while i < n && isBlank(p[i]) { i += 1 }
        var negative = false
        if i < n && (p[i] == 0x2D || p[i] == 0x2B) { negative = p[i] == 0x2D; i += 1 }
        var mantissa: UInt32 = 0, exponent = 0, sawDigit = false
        while i < n {
            let digit = p[i] &- 0x30
            guard digit < 10 else { break }
            guard mantissa < 1_677_721 else { return nil }  // the next digit could reach 2²⁴
            mantissa = mantissa &* 10 &+ UInt32(digit); i += 1; sawDigit = true
        }
        if i < n && p[i] == 0x2E {
            i += 1
            while i < n {
                let digit = p[i] &- 0x30
                guard digit < 10 else { break }
                guard mantissa < 1_677_721 else { return nil }
                mantissa = mantissa &* 10 &+ UInt32(digit); exponent -= 1; i += 1; sawDigit = true
            }
        }
        guard sawDigit else { return nil }
        if i < n && (p[i] == 0x65 || p[i] == 0x45) {
            i += 1
            var expNegative = false
            if i < n && (p[i] == 0x2D || p[i] == 0x2B) { expNegative = p[i] == 0x2D; i += 1 }
            var e = 0, expDigits = 0
            while i < n, p[i] &- 0x30 < 10, expDigits < 3 { e = e * 10 + Int(p[i] &- 0x30); i += 1; expDigits += 1 }
            guard expDigits > 0 else { return nil }
            exponent += expNegative ? -e : e
        }
        while i < n && isBlank(p[i]) { i += 1 }
        guard i == n || p[i] == 0x2C, exponent >= -10, exponent <= 10 else { return nil }
        let m = Float(mantissa)
        let v = exponent == 0 ? m : exponent > 0 ? m * exactPower(exponent) : m / exactPower(-exponent)
        return (negative ? -v : v, i + 1)
    }

    /// The plain decimal `[+-]digits[.digits][(e|E)[+-]digits]` as a Float when Clinger's fast path
    /// applies (mantissa < 2²⁴, |exponent| ≤ 10: one correctly rounded operation on exact operands);
    /// nil for anything else (the caller falls back to `Float(String)`).
    @inline(__always)
    public static func float(_ p: UnsafePointer<UInt8>, count n: Int) -> Float? {
        guard let (negative, mantissa, exponent) = decimal(p, count: n), mantissa < (1 << 24), abs(exponent) <= 10 else { return nil }
        let m = Float(mantissa)
        let v = exponent >= 0 ? m * exactPowers[exponent] : m / exactPowers[-exponent]
        return negative ? -v : v
    }

    /// The same for a Double (mantissa < 2⁵³, |exponent| ≤ 22), for labels.
    public static func double(_ p: UnsafePointer<UInt8>, count n: Int) -> Double? {
        guard let (negative, mantissa, exponent) = decimal(p, count: n), mantissa < (1 << 53), abs(exponent) <= 22 else { return nil }
        let scale = exactDoublePower(abs(exponent))
        let m = Double(mantissa)
        let v = exponent >= 0 ? m * scale : m / scale
        return negative ? -v : v
    }

    /// Sign, integer mantissa and base-10 exponent of a plain decimal; nil when it is not one, or
    /// has more than 18 significant digits.
    @inline(__always)
    public static func decimal(_ p: UnsafePointer<UInt8>, count n: Int) -> (Bool, UInt64, Int)? {
        var i = 0
        var negative = false
        if i < n && (p[i] == 0x2D || p[i] == 0x2B) { negative = p[i] == 0x2D; i += 1 }
        var mantissa: UInt64 = 0, digits = 0, exponent = 0, sawDigit = false
        while i < n, p[i] &- 0x30 < 10 {
            if mantissa != 0 || p[i] != 0x30 { digits += 1 }
            mantissa = mantissa &* 10 &+ UInt64(p[i] &- 0x30); i += 1; sawDigit = true
        }
        if i < n && p[i] == 0x2E {
            i += 1
            while i < n, p[i] &- 0x30 < 10 {
                if mantissa != 0 || p[i] != 0x30 { digits += 1 }
                mantissa = mantissa &* 10 &+ UInt64(p[i] &- 0x30); exponent -= 1; i += 1; sawDigit = true
            }
        }
        guard sawDigit, digits <= 18 else { return nil }
        if i < n && (p[i] == 0x65 || p[i] == 0x45) {
            i += 1
            var expNegative = false
            if i < n && (p[i] == 0x2D || p[i] == 0x2B) { expNegative = p[i] == 0x2D; i += 1 }
            var e = 0, expDigits = 0
            while i < n, p[i] &- 0x30 < 10, expDigits < 6 { e = e * 10 + Int(p[i] &- 0x30); i += 1; expDigits += 1 }
            guard expDigits > 0 else { return nil }
            exponent += expNegative ? -e : e
        }
        guard i == n else { return nil }
        return (negative, mantissa, exponent)
    }
}
