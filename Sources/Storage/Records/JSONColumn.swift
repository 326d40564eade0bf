// JSONColumn: a JSON text column held as its bytes, read and written only through Codable types, so
// no caller builds or parses JSON by hand. Storage does not know the types (Service defines them);
// it stores and returns the document, and `decode(_:)` / `init(_:)` are the typed accessors.
import Foundation

/// A JSON document stored in a text column (`params`, `progress`, `result`, `metrics`, …).
public struct JSONColumn: Sendable, Equatable, Hashable, CustomStringConvertible, SQLBindable {
    /// The document's UTF-8 bytes.
    public let bytes: Data

    /// The document encoding `value` (keys sorted, so equal values store equal text).
    public init<T: Encodable>(_ value: T) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        bytes = try encoder.encode(value)
    }

    /// A document of bytes already known to be JSON (as read from the store).
    init(stored text: String) { bytes = Data(text.utf8) }

    /// `{}`.
    public static let emptyObject = JSONColumn(stored: "{}")

    /// The document decoded as `T`.
    public func decode<T: Decodable>(_ type: T.Type = T.self) throws -> T {
        try JSONDecoder().decode(T.self, from: bytes)
    }

    public var description: String { String(decoding: bytes, as: UTF8.self) }

    var sqlValue: SQLValue { .text(description) }
}

extension JSONColumn: Codable {
    /// As a record field the document is its JSON text.
    public init(from decoder: any Decoder) throws { self.init(stored: try decoder.singleValueContainer().decode(String.self)) }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}

extension Row {
    func json(_ column: String) throws -> JSONColumn { JSONColumn(stored: try string(column)) }
    func optionalJSON(_ column: String) throws -> JSONColumn? { try optionalString(column).map(JSONColumn.init(stored:)) }
}

/// A half-open range of basis columns [lower, upper), stored as `[lower, upper]`.
public struct ColumnRange: Sendable, Equatable, Hashable, Codable {
    public var lower: Int
    public var upper: Int

    public init(_ range: Range<Int>) { lower = range.lowerBound; upper = range.upperBound }

    public var range: Range<Int> { lower..<upper }

    public init(from decoder: any Decoder) throws {
        var c = try decoder.unkeyedContainer()
        lower = try c.decode(Int.self)
        upper = try c.decode(Int.self)
        guard lower >= 0, lower <= upper, c.isAtEnd else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not a column range [lower, upper]"))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.unkeyedContainer()
        try c.encode(lower)
        try c.encode(upper)
    }
}
