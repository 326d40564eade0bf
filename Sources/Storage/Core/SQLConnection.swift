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
    func query(_ sql: String, _ parameters: SQLBindable...) throws -> [Row] {
        try query(sql, parameters.map(\.sqlValue))
    }

    func queryOne(_ sql: String, _ parameters: SQLBindable...) throws -> Row? {
        try query(sql, parameters.map(\.sqlValue)).first
    }

    @discardableResult func execute(_ sql: String, _ parameters: SQLBindable...) throws -> Int {
        try execute(sql, parameters.map(\.sqlValue))
    }
}
