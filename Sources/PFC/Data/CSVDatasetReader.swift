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
        var features = [Float]()
        var labels = [Int]()
        var width = rules.featureCount
        var lineNumber = 0
        var sawData = false
        func fail(_ line: Int, _ col: Int?, _ reason: String) -> DatasetError {
            DatasetError(source: source, line: line, column: col, reason: reason)
        }
        guard let text = String(data: data, encoding: .utf8) else { throw fail(1, nil, "the file is not UTF-8 text") }
        // "\r\n" is one Character in Swift, so split on any newline character.
        for line in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline) {
            lineNumber += 1
            if line.allSatisfy({ $0 == " " || $0 == "\t" }) { continue }
            let fields = line.split(separator: ",", omittingEmptySubsequences: false)
            let labelField = fields[0].trimmingCharacters(in: .whitespaces)
            if !sawData && Double(labelField) == nil {
                sawData = true // header row
                continue
            }
            sawData = true
            guard let labelValue = Double(labelField) else { throw fail(lineNumber, 1, "label '\(labelField)' is not a number") }
            // Int(exactly:) never traps (a label ≥ 2⁶³ used to abort the process); the bound is shared
            // with the JSON and NDJSON readers.
            guard labelValue.isFinite, labelValue >= 0, labelValue == labelValue.rounded() else {
                throw fail(lineNumber, 1, "label '\(labelField)' is not a non-negative integer")
            }
            guard labelValue < Double(LabeledDataset.labelLimit), let label = Int(exactly: labelValue) else {
                throw fail(lineNumber, 1, "label \(labelField) is too large: labels must be below \(LabeledDataset.labelLimit)")
            }
            if let c = rules.classes, label >= c {
                throw fail(lineNumber, 1, "label \(label) is out of range: the model has \(c) classes (0…\(c - 1))")
            }
            let count = fields.count - 1
            if count == 0 { throw fail(lineNumber, nil, "the row has a label but no features") }
            if let w = width, w != count {
                throw fail(lineNumber, nil, "the row has \(count) features, expected \(w) (ragged rows)")
            }
            width = count
            for (i, f) in fields.dropFirst().enumerated() {
                let s = f.trimmingCharacters(in: .whitespaces)
                guard let v = Float(s) else { throw fail(lineNumber, i + 2, "'\(s)' is not a number") }
                guard v.isFinite else { throw fail(lineNumber, i + 2, "'\(s)' is not a finite number") }
                if rules.requireNonNegative && v < 0 {
                    throw fail(lineNumber, i + 2, "negative feature \(s): a non-negative PFC model needs features ≥ 0")
                }
                features.append(v)
            }
            labels.append(label)
        }
        guard let d = width, !labels.isEmpty else { throw fail(max(1, lineNumber), nil, "the file has no examples") }
        return LabeledDataset(features: Matrix(rows: labels.count, cols: d, storage: features), labels: labels,
                              classes: rules.classes)
    }
}
