// Issue 12 in the store: key revoke and rotate, usage counts for quotas, NUL in text, and the
// SQLite file modes; each on both backends where both apply.
import Foundation
import Testing
@testable import Storage
#if canImport(Glibc)
import Glibc
import TestSupport
#endif

@Suite struct APIKeyLifecycleTests {
    @Test(arguments: TestDatabase.backends)
    func revokedKeyStopsAuthenticatingAtOnce(backend: Backend) throws {
        try TestDatabase.withStore(backend) { store in
            let tenant = try TestDatabase.tenant(store)
            let secret = APIKey.generateSecret()
            let key = APIKey(tenantID: tenant.id, secret: secret, label: "ci")
            try store.insert(key)
            #expect(try store.authenticate(apiKey: secret) == AuthenticatedKey(tenant: tenant, keyID: key.id))
            try store.revokeAPIKey(id: key.id)
            #expect(try store.authenticate(apiKey: secret) == nil)
            #expect(try store.apiKey(id: key.id).revokedAt != nil)
            expectStoreError(\.isNotFound) { try store.revokeAPIKey(id: key.id) }
            expectStoreError(\.isNotFound) { try store.revokeAPIKey(id: "no-such-key") }
            #expect(try store.allAPIKeys().map(\.id) == [key.id])
        }
    }

    @Test(arguments: TestDatabase.backends)
    func rotationIssuesANewKeyAndRevokesTheOldOne(backend: Backend) throws {
        try TestDatabase.withStore(backend) { store in
            let tenant = try TestDatabase.tenant(store)
            let other = try TestDatabase.tenant(store, "other")
            let secret = APIKey.generateSecret()
            let key = APIKey(tenantID: tenant.id, secret: secret, label: "deploy")
            try store.insert(key)
            try store.insert(APIKey(tenantID: other.id, secret: APIKey.generateSecret()))

            let rotated = try store.rotateAPIKey(id: key.id)
            #expect(rotated.newKey.tenantID == tenant.id && rotated.newKey.label == "deploy" && rotated.newKey.id != key.id)
            #expect(rotated.secret != secret && rotated.newKey.keySHA256 == APIKey.hash(rotated.secret))
            #expect(try store.authenticate(apiKey: rotated.secret) == AuthenticatedKey(tenant: tenant, keyID: rotated.newKey.id))
            #expect(try store.authenticate(apiKey: secret) == nil, "the old key must stop at once without a grace period")
            #expect(try store.apiKeys(tenantID: tenant.id).map(\.id) == [key.id, rotated.newKey.id])
            #expect(try store.apiKeys(tenantID: other.id).count == 1)
            expectStoreError(\.isNotFound) { _ = try store.rotateAPIKey(id: key.id) }  // already revoked
        }
    }

    @Test(arguments: TestDatabase.backends)
    func rotationGracePeriodKeepsTheOldKeyUntilItEnds(backend: Backend) throws {
        try TestDatabase.withStore(backend) { store in
            let tenant = try TestDatabase.tenant(store)
            let secret = APIKey.generateSecret()
            let key = APIKey(tenantID: tenant.id, secret: secret)
            try store.insert(key)
            let start = StoreClock.now()
            let rotated = try store.rotateAPIKey(id: key.id, graceSeconds: 60, now: start)
            #expect(rotated.oldKey.revokedAt == start.addingTimeInterval(60))
            #expect(try store.authenticate(apiKey: secret, now: start.addingTimeInterval(59))?.keyID == key.id)
            #expect(try store.authenticate(apiKey: secret, now: start.addingTimeInterval(61)) == nil)
            #expect(try store.authenticate(apiKey: rotated.secret, now: start.addingTimeInterval(61))?.keyID == rotated.newKey.id)
            #expect(try store.apiKey(id: key.id).isValid(at: start.addingTimeInterval(59)))
            // Revoking during the grace period ends it now.
            try store.revokeAPIKey(id: key.id, at: start.addingTimeInterval(10))
            #expect(try store.authenticate(apiKey: secret, now: start.addingTimeInterval(11)) == nil)
            expectStoreError({ if case .invalidArgument = $0 { true } else { false } }) {
                _ = try store.rotateAPIKey(id: rotated.newKey.id, graceSeconds: -1)
            }
        }
    }
}

@Suite struct TenantUsageTests {
    @Test(arguments: TestDatabase.backends)
    func usageCountsDatasetBytesModelsAndActiveJobsPerTenant(backend: Backend) throws {
        try TestDatabase.withStore(backend) { store in
            let tenant = try TestDatabase.tenant(store)
            let other = try TestDatabase.tenant(store, "other")
            #expect(try store.tenantUsage(tenantID: tenant.id) == TenantUsage(datasetBytes: 0, models: 0, activeJobs: 0))
            for (owner, bytes) in [(tenant, 3000), (tenant, 5), (other, 70)] {
                let dataset = Dataset(tenantID: owner.id, name: "d", examples: 1, features: 1, classes: 1)
                try store.insert(dataset)
                _ = try store.writeDatasetBlob(datasetID: dataset.id, tenantID: owner.id, chunks: [Data(count: bytes)])
            }
            try store.insert(Model(tenantID: tenant.id, name: "m", kind: "pfc", architecture: "{}"))
            try store.insert(Model(tenantID: other.id, name: "m", kind: "pfc", architecture: "{}"))
            let jobs = (0..<3).map { _ in Job(tenantID: tenant.id, kind: "train") }
            for job in jobs { try store.enqueue(job) }
            try store.enqueue(Job(tenantID: other.id, kind: "train"))
            _ = try store.claimJob(owner: "w", leaseDuration: 30)  // the oldest: running still counts
            _ = try store.cancelJob(id: jobs[2].id, tenantID: tenant.id)  // cancelled does not
            #expect(try store.tenantUsage(tenantID: tenant.id) == TenantUsage(datasetBytes: 3005, models: 1, activeJobs: 2))
            #expect(try store.tenantUsage(tenantID: other.id) == TenantUsage(datasetBytes: 70, models: 1, activeJobs: 1))
            try store.transaction { s in
                try s.lockTenantUsage(tenantID: tenant.id)
                #expect(try s.modelCount(tenantID: tenant.id) == 1)
            }
            if backend == .postgres {  // SQLite has no row lock to take: the call is a no-op there
                expectStoreError(\.isNotFound) { try store.transaction { s in try s.lockTenantUsage(tenantID: "nobody") } }
            }
        }
    }
}

@Suite struct TextAndFileModeTests {
    /// Issue 12 finding 13: PostgreSQL stored "a\u{0}b" as "a". Now both stores refuse it, so what is
    /// stored always reads back as written.
    @Test(arguments: TestDatabase.backends)
    func textWithNULIsRefusedNotTruncated(backend: Backend) throws {
        try TestDatabase.withStore(backend) { store in
            let tenant = try TestDatabase.tenant(store)
            let refused: (StoreError) -> Bool = { if case .invalidArgument(let m) = $0 { m.contains("U+0000") } else { false } }
            expectStoreError(refused) { try store.insert(Model(tenantID: tenant.id, name: "a\u{0}b", kind: "pfc", architecture: "{}")) }
            expectStoreError(refused) { try store.insert(Dataset(tenantID: tenant.id, name: "\u{0}", examples: 1, features: 1, classes: 1)) }
            expectStoreError(refused) { try store.insert(Tenant(name: "x\u{0}")) }
            #expect(try store.models(tenantID: tenant.id).items.isEmpty && store.datasets(tenantID: tenant.id).items.isEmpty)
            // Other control characters and non-ASCII text round-trip exactly.
            let name = "a\u{1}b\tc\u{7f}é🙂"
            let model = Model(tenantID: tenant.id, name: name, kind: "pfc", architecture: "{}")
            try store.insert(model)
            #expect(try store.model(id: model.id, tenantID: tenant.id).name == name)
        }
    }

    private func mode(_ path: String) -> mode_t? {
        var info = stat()
        return stat(path, &info) == 0 ? info.st_mode & 0o777 : nil
    }

    /// Issue 12 finding 14: pfc.sqlite was created 0644.
    @Test func sqliteFilesAreCreatedOwnerOnly() throws {
        let path = TestDatabase.temporaryPath("fresh/pfc.sqlite")
        defer { try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: path).deletingLastPathComponent().deletingLastPathComponent().path) }
        let previous = umask(0o022)  // the usual umask, under which the file came out 0644
        defer { umask(previous) }
        let store = try SQLiteStore(path: path)
        try store.migrate()
        try store.insert(Tenant(name: "t"))  // the WAL and shared-memory files exist while connections are open
        #expect(mode(URL(fileURLWithPath: path).deletingLastPathComponent().path) == 0o700)
        for file in [path, path + "-wal", path + "-shm"] {
            #expect(FileManager.default.fileExists(atPath: file), "\(file) should exist while the store is open")
            #expect(mode(file) == 0o600, "\(file) is \(String(mode(file) ?? 0, radix: 8))")
        }
        store.close()
    }

    @Test func existingWorldReadableDatabaseIsNarrowed() throws {
        let path = TestDatabase.temporaryPath("pfc.sqlite")
        defer { try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path) }
        try FileManager.default.createDirectory(atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path, withIntermediateDirectories: true)
        #expect(FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o644]))
        #expect(mode(path) == 0o644)
        let store = try SQLiteStore(path: path)
        try store.migrate()
        #expect(mode(path) == 0o600)
        store.close()
    }
}
