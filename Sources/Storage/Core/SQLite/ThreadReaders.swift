// ThreadReaders: SQLite reader connections owned by one thread each, for threads that must never
// wait for another request's database work.
//
// Why: the HTTP event loops run a few read-only routes inline (`GET /v1/models/{id}` on the embedded
// store, issue 15), which is where the last thread hand-offs of an authenticated GET went. A loop
// thread must not queue behind the store's shared reader pool (whose connections a long read on a
// handler thread may hold), so each such thread reads on a connection of its own: an SQLite read in
// WAL mode then waits for no other reader and no writer.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The calling thread's own reader connections, one per store, made on first use and closed with
/// the thread. Only the owning thread touches its box, so it needs no lock; a nested read (a read
/// inside a read on the same thread) takes a pool connection instead.
final class ThreadReaders {
    private struct Entry {
        weak var store: SQLiteStore?
        let connection: SQLiteConnection
        var inUse: Bool
    }

    private var entries: [ObjectIdentifier: Entry] = [:]

    /// The process-wide key of every thread's box; its destructor closes the thread's connections.
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        let status = pthread_key_create(&key) { box in
            guard let box else { return }
            Unmanaged<ThreadReaders>.fromOpaque(box).release()
        }
        precondition(status == 0, "pthread_key_create failed")
        return key
    }()

    /// The calling thread's box, made on first use.
    static var current: ThreadReaders {
        if let raw = pthread_getspecific(key) { return Unmanaged<ThreadReaders>.fromOpaque(raw).takeUnretainedValue() }
        let box = ThreadReaders()
        pthread_setspecific(key, Unmanaged.passRetained(box).toOpaque())
        return box
    }

    /// Runs `body` on this thread's connection to `store` (opened by `open` the first time), or returns
    /// nil when that connection is already in use further up this thread's stack or cannot be opened.
    func withConnection<T>(of store: SQLiteStore, open: () throws -> SQLiteConnection,
                           _ body: (SQLiteConnection) throws -> T) rethrows -> T? {
        let id = ObjectIdentifier(store)
        if let entry = entries[id], entry.store !== store { entries[id] = nil }  // an old store's address, reused
        if entries[id] == nil {
            entries = entries.filter { $0.value.store != nil }  // close the connections of stores gone since
            guard let connection = try? open() else { return nil }
            entries[id] = Entry(store: store, connection: connection, inUse: false)
        }
        guard let entry = entries[id], !entry.inUse else { return nil }
        entries[id]?.inUse = true
        defer { entries[id]?.inUse = false }
        return try body(entry.connection)
    }
}
