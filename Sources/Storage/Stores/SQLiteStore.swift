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

    /// Opens (creating the file and its parent directory if needed) the database at `path`.
    /// The file, its `-wal` and `-shm` are mode 0600 (see `SQLiteFileMode`).
    public init(path: String = SQLiteStore.defaultPath, readers readerCount: Int = 4, busyTimeoutMilliseconds: Int = 10_000) throws {
        self.path = path
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
        try readers.withConnection(keep: { _ in true }) { connection in
            try run(on: connection, writing: false, begin: "BEGIN", body)
        }
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

    private func run<T>(on connection: SQLiteConnection, writing: Bool, begin: String, _ body: (StoreSession) throws -> T) throws -> T {
        try connection.executeCached(begin)
        do {
            let session = StoreSession(connection: connection, writing: writing)
            session.blobDirectory = blobDirectory
            let result = try body(session)
            try connection.executeCached("COMMIT")
            session.afterCommit.forEach { $0() }
            jobChanges.publish(session.changedJobs)
            return result
        } catch {
            try? connection.executeCached("ROLLBACK")
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
