// SQLiteConnection: one libsqlite3 connection with a prepared-statement cache.
import CSQLite
import Foundation

/// One SQLite connection (`sqlite3*`), opened NOMUTEX and used by one thread at a time (the
/// pools guarantee it, hence `@unchecked Sendable`). `$n` placeholders become `?n`.
final class SQLiteConnection: SQLConnection, @unchecked Sendable {
    private let handle: OpaquePointer
    private var statements: [String: OpaquePointer] = [:]
    private var names: [String: [String]] = [:]
    let dialect = SQLDialect.sqlite

    /// Opens (creating if needed) the file at `path`. WAL mode, foreign keys on, a busy timeout;
    /// `readOnly` connections refuse writes (`PRAGMA query_only`).
    init(path: String, readOnly: Bool, busyTimeoutMilliseconds: Int) throws {
        _ = Self.libraryConfigured
        var connection: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
        let status = sqlite3_open_v2(path, &connection, flags, nil)
        guard status == SQLITE_OK, let connection else {
            let message = connection.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            sqlite3_close_v2(connection)
            throw StoreError.connectionFailed(message: "cannot open SQLite database \(path): \(message)")
        }
        handle = connection
        sqlite3_extended_result_codes(handle, 1)
        sqlite3_busy_timeout(handle, Int32(busyTimeoutMilliseconds))
        try executeScript("PRAGMA foreign_keys = ON")
        if readOnly {
            try executeScript("PRAGMA query_only = ON")
        } else {
            _ = try query("PRAGMA journal_mode = WAL", [])
            try executeScript("PRAGMA synchronous = NORMAL")
        }
    }

    /// Process-wide settings applied once, before the first connection initialises the library:
    /// memory statistics off, so concurrent readers do not serialise on SQLite's global allocator
    /// mutex (measured: about one contended lock per request on the model GET with two event loops).
    /// A library already initialised by someone else refuses it (SQLITE_MISUSE), which is harmless.
    private static let libraryConfigured: Void = { _ = csqlite_disable_memory_statistics() }()

    deinit {
        statements.values.forEach { sqlite3_finalize($0) }
        sqlite3_close_v2(handle)
    }

    func query(_ sql: String, _ parameters: [SQLValue]) throws -> [Row] {
        let statement = try prepared(sql)
        defer { sqlite3_reset(statement); sqlite3_clear_bindings(statement) }
        try bind(parameters, to: statement, sql: sql)
        let columnCount = sqlite3_column_count(statement)
        let names = columnNames(statement, sql: sql, count: columnCount)
        var rows: [Row] = []
        while true {
            let status = sqlite3_step(statement)
            if status == SQLITE_DONE { break }
            guard status == SQLITE_ROW else { throw error(status, sql: sql) }
            rows.append(Row(columns: names, values: (0..<columnCount).map { column(statement, $0) }))
        }
        return rows
    }

    @discardableResult
    func execute(_ sql: String, _ parameters: [SQLValue]) throws -> Int {
        _ = try query(sql, parameters)
        return Int(sqlite3_changes(handle))
    }

    /// Runs a statement without parameters or rows (`BEGIN`, `COMMIT`, …) through the
    /// prepared-statement cache: `sqlite3_exec` would parse it again on every transaction.
    func executeCached(_ sql: String) throws {
        _ = try query(sql, [])
    }

    func executeScript(_ sql: String) throws {
        var message: UnsafeMutablePointer<CChar>?
        let status = sqlite3_exec(handle, sql, nil, nil, &message)
        defer { sqlite3_free(message) }
        guard status == SQLITE_OK else {
            throw error(status, sql: sql, message: message.map { String(cString: $0) })
        }
    }

    // MARK: - Statements

    /// A statement's column names, read once per prepared statement (a result's shape is fixed by its SQL).
    private func columnNames(_ statement: OpaquePointer, sql: String, count: Int32) -> [String] {
        if let names = names[sql], names.count == Int(count) { return names }
        let fresh = (0..<count).map { String(cString: sqlite3_column_name(statement, $0)) }
        names[sql] = fresh
        return fresh
    }

    private func prepared(_ sql: String) throws -> OpaquePointer {
        if let cached = statements[sql] { return cached }
        var statement: OpaquePointer?
        let status = sqlite3_prepare_v3(handle, sql.replacingOccurrences(of: "$", with: "?"), -1,
                                        UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil)
        guard status == SQLITE_OK, let statement else { throw error(status, sql: sql) }
        statements[sql] = statement
        return statement
    }

    private func bind(_ parameters: [SQLValue], to statement: OpaquePointer, sql: String) throws {
        try refuseNUL(in: parameters, sql: sql)
        for (offset, value) in parameters.enumerated() {
            let index = Int32(offset + 1)
            let status: Int32
            switch value {
            case .null: status = sqlite3_bind_null(statement, index)
            case .integer(let number): status = sqlite3_bind_int64(statement, index, number)
            case .double(let number): status = sqlite3_bind_double(statement, index, number)
            case .bool(let flag): status = sqlite3_bind_int64(statement, index, flag ? 1 : 0)
            case .timestamp(let date): status = sqlite3_bind_int64(statement, index, microsecondsSince1970(date))
            case .text(let text):
                // sqlite3_bind_text64 takes a 64-bit length: a text over 2 GiB is refused (SQLITE_TOOBIG), not a trap.
                status = sqlite3_bind_text64(statement, index, text, sqlite3_uint64(text.utf8.count), csqlite_transient(), UInt8(SQLITE_UTF8))
            case .blob(let data):
                status = data.withUnsafeBytes { bytes in
                    // A zero-length blob must still be a blob, not NULL: pass a non-nil pointer.
                    sqlite3_bind_blob64(statement, index, bytes.baseAddress ?? UnsafeRawPointer(bitPattern: 1),
                                        sqlite3_uint64(bytes.count), csqlite_transient())
                }
            }
            guard status == SQLITE_OK else { throw error(status, sql: sql) }
        }
    }

    private func column(_ statement: OpaquePointer, _ index: Int32) -> SQLValue {
        switch sqlite3_column_type(statement, index) {
        case SQLITE_INTEGER: return .integer(sqlite3_column_int64(statement, index))
        case SQLITE_FLOAT: return .double(sqlite3_column_double(statement, index))
        case SQLITE_TEXT:
            let count = Int(sqlite3_column_bytes(statement, index))
            guard let text = sqlite3_column_text(statement, index) else { return .text("") }
            return .text(String(decoding: UnsafeBufferPointer(start: text, count: count), as: UTF8.self))
        case SQLITE_BLOB:
            let count = Int(sqlite3_column_bytes(statement, index))
            guard let bytes = sqlite3_column_blob(statement, index) else { return .blob(Data()) }
            return .blob(Data(bytes: bytes, count: count))
        default: return .null
        }
    }

    // MARK: - Errors

    private func error(_ status: Int32, sql: String, message: String? = nil) -> StoreError {
        let extended = sqlite3_extended_errcode(handle)
        let text = message ?? String(cString: sqlite3_errmsg(handle))
        switch extended {
        case SQLiteCode.constraintUnique, SQLiteCode.constraintPrimaryKey: return .conflict(message: text, sql: sql)
        case SQLiteCode.constraintForeignKey: return .notFound(text)
        default: break
        }
        switch status & 0xff {
        case SQLITE_BUSY, SQLITE_LOCKED: return .serializationFailure(message: text, sql: sql)
        default: return .database(code: "SQLITE_\(extended)", message: text, sql: sql)
        }
    }
}

/// Extended result codes that are C macro expressions Swift does not import (sqlite3.h).
enum SQLiteCode {
    static let constraintUnique = SQLITE_CONSTRAINT | (8 << 8)
    static let constraintPrimaryKey = SQLITE_CONSTRAINT | (6 << 8)
    static let constraintForeignKey = SQLITE_CONSTRAINT | (3 << 8)
}
