// SQLConnection: what the query layer needs from a backend connection. Implemented by
// PGConnection (libpq) and SQLiteConnection (libsqlite3); no C pointer leaves either.

/// The SQL dialect, for the few statements that differ (row locks on the job queue).
enum SQLDialect: Sendable {
    case postgres
    case sqlite
}

/// One open connection, used by one thread at a time (the pools enforce it).
/// SQL uses `$1, $2, …` placeholders in both dialects; values are always bound, never spliced.
protocol SQLConnection: AnyObject {
    var dialect: SQLDialect { get }
    /// Runs a statement and returns all its rows.
    func query(_ sql: String, _ parameters: [SQLValue]) throws -> [Row]
    /// Runs a statement and returns how many rows it changed.
    @discardableResult func execute(_ sql: String, _ parameters: [SQLValue]) throws -> Int
    /// Runs a script of several statements with no parameters (migrations).
    func executeScript(_ sql: String) throws
}

extension SQLConnection {
    func query(_ statement: SQL) throws -> [Row] {
        try query(statement.text, statement.parameters)
    }

    func queryOne(_ statement: SQL) throws -> Row? {
        try query(statement.text, statement.parameters).first
    }

    @discardableResult func execute(_ statement: SQL) throws -> Int {
        try execute(statement.text, statement.parameters)
    }
}

/// A statement whose interpolations become bound parameters, never SQL text:
/// `"SELECT * FROM models WHERE id = \(id)"` is `… WHERE id = $1` with `id` bound.
/// `\(sql: fragment)` splices another `SQL` (renumbering its parameters).
struct SQL: ExpressibleByStringInterpolation, Sendable {
    private(set) var text: String
    private(set) var parameters: [SQLValue]

    init(stringLiteral value: String) {
        text = value
        parameters = []
    }

    init(stringInterpolation: Interpolation) {
        text = stringInterpolation.text
        parameters = stringInterpolation.parameters
    }

    struct Interpolation: StringInterpolationProtocol {
        var text = ""
        var parameters: [SQLValue] = []

        init(literalCapacity: Int, interpolationCount: Int) {
            text.reserveCapacity(literalCapacity + 4 * interpolationCount)
        }

        mutating func appendLiteral(_ literal: String) { text += literal }

        mutating func appendInterpolation(_ value: some SQLBindable) {
            parameters.append(value.sqlValue)
            text += "$\(parameters.count)"
        }

        mutating func appendInterpolation<Value: SQLBindable>(_ value: Value?) {
            parameters.append(value?.sqlValue ?? .null)
            text += "$\(parameters.count)"
        }

        mutating func appendInterpolation(sql fragment: SQL) {
            var renumbered = ""
            var index = fragment.text.startIndex
            while index < fragment.text.endIndex {
                let character = fragment.text[index]
                index = fragment.text.index(after: index)
                guard character == "$" else { renumbered.append(character); continue }
                var digits = ""
                while index < fragment.text.endIndex, fragment.text[index].isNumber {
                    digits.append(fragment.text[index])
                    index = fragment.text.index(after: index)
                }
                renumbered += "$\((Int(digits) ?? 0) + parameters.count)"
            }
            text += renumbered
            parameters += fragment.parameters
        }
    }

    static func + (lhs: SQL, rhs: SQL) -> SQL { "\(sql: lhs)\(sql: rhs)" }
}
