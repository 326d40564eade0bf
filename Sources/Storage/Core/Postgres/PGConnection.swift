// PGConnection: one libpq connection. Parameters go out in binary (int8, float8, bool,
// timestamptz, bytea) or text; results come back in binary and are decoded by column type.
import CLibPQ
import Foundation

/// One libpq connection (`PGconn`). Used by one thread at a time; the pool guarantees it,
/// hence `@unchecked Sendable`.
final class PGConnection: SQLConnection, @unchecked Sendable {
    private let handle: OpaquePointer
    let dialect = SQLDialect.postgres

    /// Connects with a `postgres://` URL or a conninfo string. `options` become server settings
    /// for the session (`-c statement_timeout=…`, `-c search_path=…`) and survive `PQreset`.
    init(url: String, options: String, connectTimeoutSeconds: Int) throws {
        // Keywords are read in order and the last of a repeated one wins: the TCP defaults come before
        // `dbname` (the URL, expanded in its place), so a URL that sets its own keeps them.
        let defaults = Self.tcpDefaults
        let keywords = defaults.map(\.keyword) + ["dbname", "options", "connect_timeout", "application_name"]
        let values = defaults.map(\.value) + [url, options, String(connectTimeoutSeconds), "pfc-server"]
        let connection = Self.withCStringArray(keywords) { keywordPointers in
            Self.withCStringArray(values) { valuePointers in
                PQconnectdbParams(keywordPointers, valuePointers, 1)
            }
        }
        guard let connection else { throw StoreError.connectionFailed(message: "libpq could not allocate a connection") }
        guard PQstatus(connection) == CONNECTION_OK else {
            let message = Self.trimmed(PQerrorMessage(connection))
            PQfinish(connection)
            throw StoreError.connectionFailed(message: message)
        }
        handle = connection
        // Notices (e.g. "relation already exists, skipping") would go to stderr by default.
        PQsetNoticeProcessor(handle, { _, _ in }, nil)
    }

    deinit { PQfinish(handle) }

    /// TCP settings for connections over the network (libpq ignores them on a Unix socket). Without
    /// them a database host that vanished (powered off, a partition: no reset ever arrives) left a
    /// query waiting for the kernel's default of about two hours before the socket errored, holding
    /// its pool connection and the thread that waits on it. With them an idle connection is probed
    /// after 30 s (every 10 s, given up after 3 misses), and data unacknowledged for 60 s fails the call.
    static let tcpDefaults: [(keyword: String, value: String)] = [
        ("keepalives", "1"), ("keepalives_idle", "30"), ("keepalives_interval", "10"), ("keepalives_count", "3"),
        ("tcp_user_timeout", "60000"),
    ]

    /// The connection's socket (`PQsocket`), -1 when there is none.
    var socketDescriptor: Int32 { PQsocket(handle) }

    /// The value libpq uses for connection option `keyword` (`PQconninfo`), nil when unset.
    func connectionOption(_ keyword: String) -> String? {
        guard let options = PQconninfo(handle) else { return nil }
        defer { PQconninfoFree(options) }
        var p = options
        while let name = p.pointee.keyword {
            if String(cString: name) == keyword { return p.pointee.val.map { String(cString: $0) } }
            p += 1
        }
        return nil
    }

    /// The socket is believed good (libpq only learns of a dead server on the next call).
    var isConnected: Bool { PQstatus(handle) == CONNECTION_OK }

    /// No transaction open and no command in flight: safe to return to the pool.
    var isIdle: Bool { isConnected && PQtransactionStatus(handle) == PQTRANS_IDLE }

    /// Re-establishes a broken connection with the original parameters.
    func reset() throws {
        PQreset(handle)
        guard PQstatus(handle) == CONNECTION_OK else {
            throw StoreError.connectionFailed(message: Self.trimmed(PQerrorMessage(handle)))
        }
    }

    func query(_ sql: String, _ parameters: [SQLValue]) throws -> [Row] {
        let result = try run(sql, parameters)
        defer { PQclear(result) }
        return try Self.rows(of: result)
    }

    @discardableResult
    func execute(_ sql: String, _ parameters: [SQLValue]) throws -> Int {
        let result = try run(sql, parameters)
        defer { PQclear(result) }
        return Int(String(cString: PQcmdTuples(result))) ?? 0
    }

    func executeScript(_ sql: String) throws {
        let result = PQexec(handle, sql)
        defer { if let result { PQclear(result) } }
        try check(result, sql: sql)
    }

    // MARK: - Running a statement

    private func run(_ sql: String, _ parameters: [SQLValue]) throws -> OpaquePointer {
        try refuseNUL(in: parameters, sql: sql)
        try parameters.forEach(PGParameter.checkLength)
        let encoded = parameters.map(PGParameter.init)
        defer { encoded.forEach { $0.deallocate() } }
        let types = encoded.map(\.oid)
        let values: [UnsafePointer<CChar>?] = encoded.map { $0.bytes.map { UnsafePointer($0.assumingMemoryBound(to: CChar.self)) } }
        let lengths = encoded.map(\.length)
        let formats = encoded.map(\.format)
        let result = PQexecParams(handle, sql, Int32(encoded.count), types, values, lengths, formats, 1)
        do {
            try check(result, sql: sql)
        } catch {
            if let result { PQclear(result) }
            throw error
        }
        return result!
    }

    /// Throws for a failed result; never frees it (the caller owns `result`).
    private func check(_ result: OpaquePointer?, sql: String) throws {
        guard let result else {
            throw StoreError.connectionFailed(message: Self.trimmed(PQerrorMessage(handle)))
        }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY:
            return
        default:
            let code = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) } ?? ""
            let message = Self.trimmed(PQresultErrorMessage(result))
            throw Self.error(sqlState: code, message: message, sql: sql, connected: isConnected)
        }
    }

    /// Maps SQLSTATE to the store's errors (PostgreSQL appendix A).
    static func error(sqlState: String, message: String, sql: String, connected: Bool) -> StoreError {
        switch sqlState {
        case "23505": return .conflict(message: message, sql: sql)
        case "23503": return .notFound(message)
        case "40001", "40P01": return .serializationFailure(message: message, sql: sql)
        case "57014": return .timeout(message: message, sql: sql)
        case _ where sqlState.hasPrefix("08") || sqlState == "57P01" || sqlState == "57P02" || sqlState == "57P03":
            return .connectionFailed(message: message)
        case "" where !connected: return .connectionFailed(message: message)
        default: return .database(code: sqlState.isEmpty ? "unknown" : sqlState, message: message, sql: sql)
        }
    }

    // MARK: - Decoding results

    private static func rows(of result: OpaquePointer) throws -> [Row] {
        let rowCount = Int(PQntuples(result))
        let columnCount = Int(PQnfields(result))
        let names = (0..<columnCount).map { String(cString: PQfname(result, Int32($0))) }
        let types = (0..<columnCount).map { PQftype(result, Int32($0)) }
        var rows: [Row] = []
        rows.reserveCapacity(rowCount)
        for row in 0..<Int32(rowCount) {
            var values: [SQLValue] = []
            values.reserveCapacity(columnCount)
            for column in 0..<Int32(columnCount) {
                if PQgetisnull(result, row, column) != 0 {
                    values.append(.null)
                    continue
                }
                let length = Int(PQgetlength(result, row, column))
                let bytes = UnsafeRawBufferPointer(start: PQgetvalue(result, row, column), count: length)
                values.append(try PGBinary.decode(bytes, oid: types[Int(column)], column: names[Int(column)]))
            }
            rows.append(Row(columns: names, values: values))
        }
        return rows
    }

    // MARK: - C strings

    private static func withCStringArray<T>(_ strings: [String], _ body: ([UnsafePointer<CChar>?]) -> T) -> T {
        let copies = strings.map { strdup($0) }
        defer { copies.forEach { free($0) } }
        return body(copies.map { UnsafePointer($0) } + [nil])
    }

    private static func trimmed(_ message: UnsafePointer<CChar>?) -> String {
        guard let message else { return "unknown libpq error" }
        return String(cString: message).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
