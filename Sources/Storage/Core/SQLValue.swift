// SQLValue and Row: the values Core binds as parameters and decodes from result rows.
import Foundation

/// A value bound to a `$n` parameter or read from a result column.
enum SQLValue: Sendable, Equatable {
    case null
    case integer(Int64)
    case double(Double)
    case text(String)
    case blob(Data)
    case bool(Bool)
    /// Microsecond precision; PostgreSQL `timestamptz`, SQLite integer microseconds since 1970.
    case timestamp(Date)
}

/// Refuses text parameters that contain U+0000. PostgreSQL `text` cannot hold NUL (libpq would
/// send the string cut at the first NUL, so the row would keep `a` of `a\u{0}b` while the caller
/// believed `a\u{0}b` stored); SQLite could keep it but its string functions would not see past it.
/// Both backends refuse, so a value reads back exactly as written or is not written at all.
func refuseNUL(in parameters: [SQLValue], sql: String) throws {
    for (offset, value) in parameters.enumerated() {
        guard case .text(let text) = value, text.utf8.contains(0) else { continue }
        throw StoreError.invalidArgument("text parameter $\(offset + 1) contains U+0000 (NUL), which the database cannot store"
            + " [SQL: \(sql.count > 200 ? String(sql.prefix(200)) + "…" : sql)]")
    }
}

/// Values that can be bound as parameters.
protocol SQLBindable { var sqlValue: SQLValue { get } }

extension Int: SQLBindable { var sqlValue: SQLValue { .integer(Int64(self)) } }
extension Int64: SQLBindable { var sqlValue: SQLValue { .integer(self) } }
extension Double: SQLBindable { var sqlValue: SQLValue { .double(self) } }
extension String: SQLBindable { var sqlValue: SQLValue { .text(self) } }
extension Data: SQLBindable { var sqlValue: SQLValue { .blob(self) } }
extension Bool: SQLBindable { var sqlValue: SQLValue { .bool(self) } }
extension Date: SQLBindable { var sqlValue: SQLValue { .timestamp(self) } }
extension Optional: SQLBindable where Wrapped: SQLBindable {
    var sqlValue: SQLValue { self?.sqlValue ?? .null }
}
extension RawRepresentable where RawValue == String {
    var sqlValue: SQLValue { .text(rawValue) }
}

/// Microseconds since 1970 for a date, the unit both backends store.
func microsecondsSince1970(_ date: Date) -> Int64 {
    Int64((date.timeIntervalSince1970 * 1_000_000).rounded())
}

func dateFromMicroseconds(_ micros: Int64) -> Date {
    Date(timeIntervalSince1970: Double(micros) / 1_000_000)
}

/// One result row: column names and values, decoded by name with typed accessors.
struct Row: Sendable {
    let columns: [String]
    let values: [SQLValue]

    func value(_ column: String) throws -> SQLValue {
        guard let index = columns.firstIndex(of: column) else {
            throw StoreError.decoding(column: column, message: "no such column in result")
        }
        return values[index]
    }

    func string(_ column: String) throws -> String {
        guard let value = try optionalString(column) else { throw nullError(column) }
        return value
    }

    func optionalString(_ column: String) throws -> String? {
        switch try value(column) {
        case .null: return nil
        case .text(let text): return text
        case let other: throw typeError(column, "text", other)
        }
    }

    func int(_ column: String) throws -> Int {
        guard let value = try optionalInt(column) else { throw nullError(column) }
        return value
    }

    func optionalInt(_ column: String) throws -> Int? {
        switch try value(column) {
        case .null: return nil
        case .integer(let value): return Int(value)
        case .bool(let flag): return flag ? 1 : 0
        case let other: throw typeError(column, "integer", other)
        }
    }

    func optionalDouble(_ column: String) throws -> Double? {
        switch try value(column) {
        case .null: return nil
        case .double(let value): return value
        case .integer(let value): return Double(value)
        case let other: throw typeError(column, "double", other)
        }
    }

    func bool(_ column: String) throws -> Bool {
        switch try value(column) {
        case .bool(let flag): return flag
        case .integer(let value): return value != 0
        case let other: throw typeError(column, "boolean", other)
        }
    }

    func date(_ column: String) throws -> Date {
        guard let value = try optionalDate(column) else { throw nullError(column) }
        return value
    }

    func optionalDate(_ column: String) throws -> Date? {
        switch try value(column) {
        case .null: return nil
        case .timestamp(let date): return date
        case .integer(let micros): return dateFromMicroseconds(micros)
        case let other: throw typeError(column, "timestamp", other)
        }
    }

    func data(_ column: String) throws -> Data {
        guard let value = try optionalData(column) else { throw nullError(column) }
        return value
    }

    func optionalData(_ column: String) throws -> Data? {
        switch try value(column) {
        case .null: return nil
        case .blob(let data): return data
        case let other: throw typeError(column, "blob", other)
        }
    }

    func decode<T: RawRepresentable>(_ column: String, as type: T.Type) throws -> T where T.RawValue == String {
        let raw = try string(column)
        guard let value = T(rawValue: raw) else {
            throw StoreError.decoding(column: column, message: "unknown \(T.self) '\(raw)'")
        }
        return value
    }

    private func nullError(_ column: String) -> StoreError {
        .decoding(column: column, message: "unexpected NULL")
    }

    private func typeError(_ column: String, _ expected: String, _ found: SQLValue) -> StoreError {
        .decoding(column: column, message: "expected \(expected), found \(found)")
    }
}
