// PostgreSQL-only behaviour: deadlocks are retried, long statements time out, a vanished host is noticed.
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

    /// Two replicas claiming jobs of one model at once: replica 1 has claimed B and not yet
    /// committed when A (queued earlier by the clock) is claimed by replica 2, whose snapshot still
    /// shows B queued and newer. Under the per-model lock replica 2 then sees B running and rolls
    /// its claim back: A stays queued.
    @Test(.enabled(if: TestDatabase.postgresURL != nil || TestDatabase.isCI, "needs PFC_TEST_DATABASE_URL"))
    func postgresClaimsOneVersionWritingJobPerModelAcrossReplicas() throws {
        try TestDatabase.withStore(.postgres, poolSize: 3) { store in
            let tenant = try TestDatabase.tenant(store)
            let model = Model(tenantID: tenant.id, name: "m", kind: "pfc", architecture: "{}")
            try store.insert(model)
            let serial = ["train", "task", "forget"]
            let b = Job(tenantID: tenant.id, kind: "task", modelID: model.id)
            try store.enqueue(b)
            let claimedB = DispatchSemaphore(value: 0), commitB = DispatchSemaphore(value: 0), done = DispatchGroup()
            done.enter()
            Thread {
                defer { done.leave() }
                try? store.transaction { s in
                    _ = try s.claimJob(owner: "replica-1", leaseDuration: 30, oneAtATimePerModel: serial)
                    claimedB.signal()
                    commitB.wait()
                }
            }.start()
            claimedB.wait()
            let a = Job(tenantID: tenant.id, kind: "task", modelID: model.id, createdAt: b.createdAt.addingTimeInterval(-60))
            try store.enqueue(a)
            let second = Mutex<Result<String?, any Error>?>(nil)
            done.enter()
            Thread {
                defer { done.leave() }
                let r = Result { try store.claimJob(owner: "replica-2", leaseDuration: 30, oneAtATimePerModel: serial)?.id }
                second.withLock { $0 = r }
            }.start()
            Thread.sleep(forTimeInterval: 1)  // replica 2 waits on the model's lock
            commitB.signal()
            done.wait()
            #expect(try second.withLock { try $0?.get() } == nil)
            #expect(try store.job(id: b.id, tenantID: tenant.id).state == .running)
            #expect(try store.job(id: a.id, tenantID: tenant.id).state == .queued)
        }
    }

    /// A parameter longer than the wire's 32-bit length (a 2 GiB blob: zero pages, never touched) is
    /// refused as a bad argument before anything is sent, and the connection goes on serving.
    @Test(.enabled(if: TestDatabase.postgresURL != nil || TestDatabase.isCI, "needs PFC_TEST_DATABASE_URL"))
    func postgresRefusesAParameterTooLongForTheWire() throws {
        guard let url = TestDatabase.postgresURL else { Issue.record("PFC_TEST_DATABASE_URL is not set"); return }
        let store = try PostgresStore(configuration: .init(url: url, poolSize: 1))
        let huge = Data(count: Int(Int32.max) + 1)
        expectStoreError({ if case .invalidArgument = $0 { true } else { false } }) {
            _ = try store.read { try $0.connection.query("SELECT length(\(huge)::bytea)::bigint AS n") }
        }
        #expect(try store.read { try $0.connection.queryOne("SELECT length(\(Data(count: 3))::bytea)::bigint AS n")!.int("n") } == 3)
    }

    /// Connections over TCP probe an idle peer and give up on unacknowledged data (libpq's defaults
    /// leave both to the kernel: hours), as the socket itself shows; a URL that sets its own keeps it.
    @Test(.enabled(if: TestDatabase.postgresURL != nil || TestDatabase.isCI, "needs PFC_TEST_DATABASE_URL"))
    func postgresConnectionsNoticeAVanishedHost() throws {
        guard let url = TestDatabase.postgresURL else { Issue.record("PFC_TEST_DATABASE_URL is not set"); return }
        func option(_ fd: Int32, _ level: Int32, _ name: Int32) -> Int32 {
            var value: Int32 = -1
            var size = socklen_t(MemoryLayout<Int32>.size)
            #expect(getsockopt(fd, level, name, &value, &size) == 0)
            return value
        }
        let c = try PGConnection(url: url, options: "", connectTimeoutSeconds: 5)
        #expect(c.connectionOption("keepalives_idle") == "30" && c.connectionOption("tcp_user_timeout") == "60000")
        let fd = c.socketDescriptor
        #expect(fd >= 0)
        #expect(option(fd, SOL_SOCKET, SO_KEEPALIVE) == 1)
        #expect(option(fd, Int32(IPPROTO_TCP), 4 /* TCP_KEEPIDLE */) == 30)
        #expect(option(fd, Int32(IPPROTO_TCP), 5 /* TCP_KEEPINTVL */) == 10)
        #expect(option(fd, Int32(IPPROTO_TCP), 6 /* TCP_KEEPCNT */) == 3)
        #expect(option(fd, Int32(IPPROTO_TCP), 18 /* TCP_USER_TIMEOUT */) == 60_000)
        #expect(try c.queryOne("SELECT 1::bigint AS one")?.int("one") == 1)

        let own = try PGConnection(url: url + (url.contains("?") ? "&" : "?") + "keepalives_idle=7", options: "", connectTimeoutSeconds: 5)
        #expect(own.connectionOption("keepalives_idle") == "7")
        #expect(option(own.socketDescriptor, Int32(IPPROTO_TCP), 4 /* TCP_KEEPIDLE */) == 7)
    }
}
