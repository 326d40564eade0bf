// SQLiteStore: the embedded default, one writer connection and a pool of readers over WAL.
import Foundation
import Logging
import Synchronization

/// The SQLite `Store`: a single file in WAL mode, with one writer connection (write
/// transactions are `BEGIN IMMEDIATE`, so they queue instead of failing) and a small pool of
/// reader connections that never block the writer.
public final class SQLiteStore: Store {
    /// Where the embedded database lives when no PostgreSQL URL is given.
    public static let defaultPath = "./data/pfc.sqlite"

    public let backend = StoreBackend.sqlite
    public let jobChanges = JobChangeFeed()
    /// The database file.
    public let path: String
    /// Where large dataset payloads live (`DatasetBlobFiles`): `<path>-blobs`; nil for in-memory databases.
    public let blobDirectory: String?
    private let writer: ConnectionPool<SQLiteConnection>
    private let readers: ConnectionPool<SQLiteConnection>
    private let busyTimeoutMilliseconds: Int
    /// Which threads read on a connection of their own (`ThreadReaders`); nil: none. Boxed: a closure
    /// read back out of a `Mutex` by value gained a pair of reabstraction thunks on every read, until
    /// calling it overflowed the stack.
    private final class ThreadPredicate: Sendable {
        let holds: @Sendable () -> Bool
        init(_ holds: @escaping @Sendable () -> Bool) { self.holds = holds }
    }
    private let ownReaders = Mutex<ThreadPredicate?>(nil)

    /// Opens (creating the file and its parent directory if needed) the database at `path`.
    /// The file, its `-wal` and `-shm` are mode 0600 (see `SQLiteFileMode`).
    public init(path: String = SQLiteStore.defaultPath, readers readerCount: Int = 4, busyTimeoutMilliseconds: Int = 10_000) throws {
        self.path = path
        self.busyTimeoutMilliseconds = busyTimeoutMilliseconds
        blobDirectory = DatasetBlobDirectory.path(forDatabase: path)
        try SQLiteFileMode.secure(databasePath: path)
        let first = try SQLiteConnection(path: path, readOnly: false, busyTimeoutMilliseconds: busyTimeoutMilliseconds)
        let pending = PendingConnection(first)
        writer = ConnectionPool(capacity: 1, acquireTimeout: 600) {
            try pending.take() ?? SQLiteConnection(path: path, readOnly: false, busyTimeoutMilliseconds: busyTimeoutMilliseconds)
        }
        readers = ConnectionPool(capacity: max(1, readerCount), acquireTimeout: 600) {
            try SQLiteConnection(path: path, readOnly: true, busyTimeoutMilliseconds: busyTimeoutMilliseconds)
        }
    }

    @discardableResult public func transaction<T>(_ body: (StoreSession) throws -> T) throws -> T {
        try writer.withConnection(keep: { _ in true }) { connection in
            try run(on: connection, writing: true, begin: "BEGIN IMMEDIATE", body)
        }
    }

    public func read<T>(_ body: (StoreSession) throws -> T) throws -> T {
        if let result = try onOwnReader({ try run(on: $0, writing: false, begin: "BEGIN", body) }) { return result }
        return try readers.withConnection(keep: { _ in true }) { connection in
            try run(on: connection, writing: false, begin: "BEGIN", body)
        }
    }

    /// Threads for which `predicate` holds (the HTTP event loops, which run some read-only routes
    /// inline) read on a reader connection of their own instead of the shared pool, so they never
    /// wait for a connection another thread holds. At most one connection per such thread.
    public func giveOwnReaders(to predicate: @escaping @Sendable () -> Bool) {
        let box = ThreadPredicate(predicate)
        ownReaders.withLock { $0 = box }
    }

    /// `body` on this thread's own reader, when this thread has one (nil: use the pool).
    private func onOwnReader<T>(_ body: (SQLiteConnection) throws -> T) throws -> T? {
        guard let wants = ownReaders.withLock({ $0 }), wants.holds() else { return nil }
        let (path, timeout) = (self.path, busyTimeoutMilliseconds)
        return try ThreadReaders.current.withConnection(of: self, open: {
            try SQLiteConnection(path: path, readOnly: true, busyTimeoutMilliseconds: timeout)
        }, body)
    }

    /// One statement on a reader, in SQLite's autocommit mode: it is its own read transaction, and
    /// the two extra statements (BEGIN, COMMIT) and their lock round trips are saved.
    public func readStatement<T>(_ body: (StoreSession) throws -> T) throws -> T {
        let run = { (connection: SQLiteConnection) throws -> T in try self.run(on: connection, writing: false, begin: nil, body) }
        if let result = try onOwnReader(run) { return result }
        return try readers.withConnection(keep: { _ in true }, run)
    }

    @discardableResult public func migrate() throws -> MigrationReport {
        let report = try Migrator(store: self, migrations: EmbeddedMigrations.sqlite).migrate()
        try sweepDatasetBlobFiles()
        return report
    }

    public func migrationStatus() throws -> MigrationReport {
        try Migrator(store: self, migrations: EmbeddedMigrations.sqlite).status()
    }

    public func close() {
        readers.drain()
        writer.drain()
    }

    /// `body` in a session on `connection`, inside `begin` … COMMIT (ROLLBACK when it throws); with no
    /// `begin`, in SQLite's autocommit mode (one read statement, its own transaction).
    private func run<T>(on connection: SQLiteConnection, writing: Bool, begin: String?, _ body: (StoreSession) throws -> T) throws -> T {
        if let begin { try connection.executeCached(begin) }
        do {
            let session = StoreSession(connection: connection, writing: writing)
            session.blobDirectory = blobDirectory
            let result = try body(session)
            if begin != nil { try connection.executeCached("COMMIT") }
            session.afterCommit.forEach { $0() }
            jobChanges.publish(session.changedJobs)
            return result
        } catch {
            if begin != nil { try? connection.executeCached("ROLLBACK") }
            throw error
        }
    }
}

/// The writer opened eagerly in `init` (so a bad path fails there), handed to the pool once.
private final class PendingConnection: Sendable {
    private let slot: Mutex<SQLiteConnection?>
    init(_ connection: SQLiteConnection) { slot = Mutex(connection) }
    func take() -> SQLiteConnection? { slot.withLock { value in let taken = value; value = nil; return taken } }
}
