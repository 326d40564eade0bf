// The process-wide libsqlite3 settings the SQLite store applies before its first connection.
import CSQLite
import Foundation
import Storage
import Testing
import TestSupport

@Suite struct SQLiteLibraryTests {
    /// With memory statistics on (SQLite's default) every sqlite3_malloc takes one global mutex, and
    /// two event loops reading at once contended on it about once per request. Off, SQLite keeps no
    /// count: after real work the reported usage and its high-water mark stay 0.
    @Test func memoryStatisticsAreOffSoAllocationsTakeNoGlobalLock() throws {
        let path = TestDatabase.temporaryPath("pfc.sqlite")
        defer { try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path) }
        let store = try SQLiteStore(path: path)
        try store.migrate()
        let tenant = Tenant(name: "memory statistics")
        try store.insert(tenant)
        #expect(try store.read { try $0.tenant(id: tenant.id) }.name == "memory statistics")
        #expect(sqlite3_memory_used() == 0)
        #expect(sqlite3_memory_highwater(0) == 0)
        store.close()
    }
}
