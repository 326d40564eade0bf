// PostgreSQL-only behaviour: deadlocks are retried, long statements time out.
import Foundation
import Synchronization
import Testing
@testable import Storage
import TestSupport

extension ConformanceTests {
    /// Two transactions lock two tenants in opposite order; PostgreSQL aborts one with 40P01
    /// after deadlock_timeout (1 s) and `transaction` re-runs it, so both commit.
    @Test(.enabled(if: TestDatabase.postgresURL != nil || TestDatabase.isCI, "needs PFC_TEST_DATABASE_URL"))
    func postgresDeadlockIsRetried() throws {
        try TestDatabase.withStore(.postgres, poolSize: 3) { store in
            let a = try TestDatabase.tenant(store, "a"), b = try TestDatabase.tenant(store, "b")
            let bothLockedFirst = DispatchGroup()
            bothLockedFirst.enter()
            bothLockedFirst.enter()
            let attempts = Mutex<[Int]>([0, 0])
            let failures = Mutex<[String]>([])
            let done = DispatchGroup()
            for (index, order) in [(0, [a.id, b.id]), (1, [b.id, a.id])] {
                done.enter()
                Thread {
                    defer { done.leave() }
                    do {
                        try store.transaction { tx in
                            let attempt = attempts.withLock { $0[index] += 1; return $0[index] }
                            try tx.connection.execute("UPDATE tenants SET name = name || '+' WHERE id = \(order[0])")
                            if attempt == 1 {
                                bothLockedFirst.leave()
                                bothLockedFirst.wait()
                            }
                            try tx.connection.execute("UPDATE tenants SET name = name || '+' WHERE id = \(order[1])")
                        }
                    } catch {
                        failures.withLock { $0.append("\(error)") }
                    }
                }.start()
            }
            done.wait()
            #expect(failures.withLock { $0 } == [])
            #expect(attempts.withLock { $0 }.sorted() == [1, 2], "exactly one transaction should have been retried")
            #expect(try store.tenant(id: a.id).name == "a++" && store.tenant(id: b.id).name == "b++")
        }
    }

    @Test(.enabled(if: TestDatabase.postgresURL != nil || TestDatabase.isCI, "needs PFC_TEST_DATABASE_URL"))
    func postgresStatementTimeoutIsReported() throws {
        guard let url = TestDatabase.postgresURL else { Issue.record("PFC_TEST_DATABASE_URL is not set"); return }
        let store = try PostgresStore(configuration: .init(url: url, poolSize: 1, statementTimeoutMilliseconds: 100))
        expectStoreError({ if case .timeout = $0 { true } else { false } }) {
            _ = try store.read { try $0.connection.query("SELECT pg_sleep(2)::text AS slept") }
        }
        #expect(try store.read { try $0.connection.queryOne("SELECT 1::bigint AS one")!.int("one") } == 1)
    }
}
