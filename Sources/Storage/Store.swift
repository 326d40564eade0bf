// Store: the persistence API the service layer uses, over PostgreSQL or SQLite.
import Foundation

/// Which database a `Store` talks to.
public enum StoreBackend: String, Sendable {
    case postgres
    case sqlite
}

/// Everything the service can do to the database, available both on a `Store` (each call is
/// its own transaction) and on a `StoreSession` inside `transaction { }` (all calls share it).
/// The operations live in extensions of this protocol (`Queries/`).
public protocol StoreOperations {
    /// Runs `body` in a session: a write transaction when `writing`, else a read snapshot.
    @discardableResult func withSession<T>(writing: Bool, _ body: (StoreSession) throws -> T) throws -> T
    /// `withSession(writing: false)` for a body of exactly one statement: on a `Store`, its
    /// `readStatement`; in a session, the session itself.
    func withStatementSession<T>(_ body: (StoreSession) throws -> T) throws -> T
}

/// A database behind the `Storage` API. Blocking and synchronous: call it from worker or
/// handler threads, never from Swift's cooperative pool.
public protocol Store: StoreOperations, Sendable {
    /// The backend in use.
    var backend: StoreBackend { get }
    /// Runs `body` in one atomic write transaction: all of it commits, or none of it (the error
    /// is rethrown after rollback). PostgreSQL retries `body` on serialization failure or
    /// deadlock, so `body` must not have side effects outside the session it is given.
    @discardableResult func transaction<T>(_ body: (StoreSession) throws -> T) throws -> T
    /// Runs `body` against a consistent read-only snapshot.
    func read<T>(_ body: (StoreSession) throws -> T) throws -> T
    /// `read` for a `body` that runs exactly one statement: a single statement is its own snapshot,
    /// so a store may run it without an explicit transaction (SQLite: no BEGIN and COMMIT around it).
    func readStatement<T>(_ body: (StoreSession) throws -> T) throws -> T
    /// Applies pending migrations; refuses a database with migrations newer than this binary.
    @discardableResult func migrate() throws -> MigrationReport
    /// Reports applied and pending migrations without changing anything; throws
    /// `StoreError.incompatibleSchema` for a database newer than this binary.
    func migrationStatus() throws -> MigrationReport
    /// Closes idle connections. The store stays usable (it reconnects on demand).
    func close()
    /// Committed job changes in this process, for the event hub.
    var jobChanges: JobChangeFeed { get }
}

extension Store {
    @discardableResult public func withSession<T>(writing: Bool, _ body: (StoreSession) throws -> T) throws -> T {
        writing ? try transaction(body) : try read(body)
    }

    public func readStatement<T>(_ body: (StoreSession) throws -> T) throws -> T { try read(body) }

    public func withStatementSession<T>(_ body: (StoreSession) throws -> T) throws -> T { try readStatement(body) }
}

extension StoreOperations {
    public func withStatementSession<T>(_ body: (StoreSession) throws -> T) throws -> T { try withSession(writing: false, body) }
}

/// A transaction or read snapshot on one connection, handed to `Store.transaction { }` and
/// `Store.read { }`. Valid only inside that closure and on that thread.
public final class StoreSession: StoreOperations {
    let connection: any SQLConnection
    let isWriting: Bool
    /// Cleared by operations that consume a one-shot input (a blob stream): such a
    /// transaction cannot be re-run on serialization failure.
    var isRetrySafe = true
    /// Jobs changed in this transaction (`jobChanged`), announced after commit.
    var changedJobs: [String] = []
    /// Run once the transaction committed (content files of datasets: adopt or unlink).
    var afterCommit: [() -> Void] = []
    /// The SQLite store's directory of dataset content files (`DatasetBlobFiles`); nil for PostgreSQL.
    var blobDirectory: String?

    init(connection: any SQLConnection, writing: Bool) {
        self.connection = connection
        self.isWriting = writing
    }

    var dialect: SQLDialect { connection.dialect }

    @discardableResult public func withSession<T>(writing: Bool, _ body: (StoreSession) throws -> T) throws -> T {
        if writing && !isWriting {
            throw StoreError.invalidArgument("a write operation was called inside Store.read { }; use Store.transaction { }")
        }
        return try body(self)
    }
}

/// A session is bound to the thread running the closure; it must not cross threads.
@available(*, unavailable)
extension StoreSession: Sendable {}
