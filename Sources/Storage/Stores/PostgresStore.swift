// PostgresStore: the production store, on libpq with a bounded, self-healing connection pool.
import Foundation
import Logging

/// The PostgreSQL `Store`. Connections come from a bounded pool; each checkout verifies the
/// connection (`PQstatus`, `PQreset`) and a connection the server dropped (restart, failover)
/// is re-established on the next call. Transactions retry on serialization failure and deadlock.
public final class PostgresStore: Store {
    /// Connection and pool settings.
    public struct Configuration: Sendable {
        /// `postgres://user:password@host:port/database?sslmode=…` or a conninfo string.
        public var url: String
        /// Most connections open at once.
        public var poolSize: Int = 8
        /// How long a caller waits for a free connection.
        public var acquireTimeoutSeconds: Double = 30
        /// Server-side `statement_timeout` for every statement.
        public var statementTimeoutMilliseconds: Int = 60_000
        /// libpq `connect_timeout`.
        public var connectTimeoutSeconds: Int = 10
        /// Attempts for a transaction that fails with 40001/40P01.
        public var maxTransactionAttempts: Int = 5
        /// Optional `search_path` (one schema per test, or per deployment).
        public var schema: String?

        /// Settings with defaults for everything but the URL.
        public init(url: String, poolSize: Int = 8, statementTimeoutMilliseconds: Int = 60_000, schema: String? = nil) {
            self.url = url
            self.poolSize = poolSize
            self.statementTimeoutMilliseconds = statementTimeoutMilliseconds
            self.schema = schema
        }
    }

    public let backend = StoreBackend.postgres
    public let jobChanges = JobChangeFeed()
    let configuration: Configuration
    private let pool: ConnectionPool<PGConnection>
    private let logger: Logger

    /// Opens the pool and checks that the server answers (one connection is made at once).
    public init(configuration: Configuration, logger: Logger = Logger(label: "pfc.storage.postgres")) throws {
        guard configuration.poolSize > 0 else { throw StoreError.invalidArgument("poolSize must be positive") }
        if let schema = configuration.schema, !schema.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) {
            throw StoreError.invalidArgument("schema name must be letters, digits and underscores")
        }
        self.configuration = configuration
        self.logger = logger
        var options = "-c statement_timeout=\(configuration.statementTimeoutMilliseconds)"
        if let schema = configuration.schema { options += " -c search_path=\(schema)" }
        let url = configuration.url, timeout = configuration.connectTimeoutSeconds, sessionOptions = options
        pool = ConnectionPool(capacity: configuration.poolSize, acquireTimeout: configuration.acquireTimeoutSeconds) {
            try PGConnection(url: url, options: sessionOptions, connectTimeoutSeconds: timeout)
        }
        _ = try read { session in try session.connection.query("SELECT 1") }
    }

    @discardableResult public func transaction<T>(_ body: (StoreSession) throws -> T) throws -> T {
        var attempt = 1
        while true {
            do {
                return try session(writing: true, begin: "BEGIN", body)
            } catch let error as RetryableTransactionError where attempt < configuration.maxTransactionAttempts {
                logger.debug("retrying transaction", metadata: ["attempt": "\(attempt)", "error": "\(error.underlying)"])
                attempt += 1
                Thread.sleep(forTimeInterval: Double.random(in: 0.001...0.005) * Double(attempt))
            } catch let error as RetryableTransactionError {
                throw error.underlying
            }
        }
    }

    public func read<T>(_ body: (StoreSession) throws -> T) throws -> T {
        do {
            return try session(writing: false, begin: "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", body)
        } catch let error as RetryableTransactionError {
            throw error.underlying
        }
    }

    @discardableResult public func migrate() throws -> MigrationReport {
        try Migrator(store: self, migrations: EmbeddedMigrations.postgres).migrate()
    }

    public func migrationStatus() throws -> MigrationReport {
        try Migrator(store: self, migrations: EmbeddedMigrations.postgres).status()
    }

    public func close() { pool.drain() }

    /// The server URL (for a dedicated `PGListener` connection).
    public var url: String { configuration.url }

    /// Checks out a connection, opens the transaction (re-connecting once if the server dropped
    /// the connection while it sat idle), runs `body`, commits or rolls back.
    private func session<T>(writing: Bool, begin: String, _ body: (StoreSession) throws -> T) throws -> T {
        try pool.withConnection(keep: { $0.isIdle }) { connection in
            try open(connection, begin: begin)
            let session = StoreSession(connection: connection, writing: writing)
            do {
                let result = try body(session)
                try connection.executeScript("COMMIT")
                jobChanges.publish(session.changedJobs)
                return result
            } catch {
                if connection.isConnected { try? connection.executeScript("ROLLBACK") }
                if case StoreError.serializationFailure = error, session.isRetrySafe {
                    throw RetryableTransactionError(underlying: error)
                }
                throw error
            }
        }
    }

    private func open(_ connection: PGConnection, begin: String) throws {
        if !connection.isConnected { try connection.reset() }
        do {
            try connection.executeScript(begin)
        } catch StoreError.connectionFailed(let message) {
            // The server closed the idle connection (restart): nothing ran yet, so reconnect.
            logger.info("reconnecting to PostgreSQL", metadata: ["reason": "\(message)"])
            try connection.reset()
            try connection.executeScript(begin)
        }
    }
}

/// A transaction that failed with a retryable error before anything was committed.
struct RetryableTransactionError: Error {
    let underlying: Error
}
