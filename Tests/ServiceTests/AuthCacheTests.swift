// Issue 15, auth cache: an API key's answer is reused for a short lifetime, so a revoked key stops
// working within that bound (and a rotated key's grace period still ends on time), an unknown key
// that is then created works within it, both tables stay bounded, and changes made through this
// process's `APIKeys` take effect at once. Over real sockets and both stores where the database
// is involved; the cache's own rules with a clock the test moves.
import Foundation
import Synchronization
import Testing
@testable import HTTP
@testable import Service
@testable import Storage
import TestSupport

@Suite struct AuthCacheTests {
    /// The serve default, which the harness runs with.
    static let bound = ServiceConfiguration().authCacheSeconds
    /// What a loaded 2-core machine may add to the bound.
    static let slack = 1.5

    /// Polls `path` with `client` until it answers `status`; the seconds that took, nil after `timeout`.
    static func secondsUntil(_ status: Int, _ client: TestClient, _ path: String = "/v1/datasets", timeout: Double = 10) throws -> Double? {
        let start = Date()
        while Date().timeIntervalSince(start) < timeout {
            if try client.request("GET", path).status == status { return Date().timeIntervalSince(start) }
            Thread.sleep(forTimeInterval: 0.05)
        }
        return nil
    }

    @Test(arguments: Backend.all)
    func aKeyRevokedBehindTheServersBackIs401WithinTheBound(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            let tenant = try h.store.tenant(id: try h.tenantID())
            let client = TestClient(port: h.server.port, key: try APIKeys.create(in: h.store, tenantName: tenant.name))
            for _ in 0..<5 { #expect(try client.request("GET", "/v1/datasets").status == 200) }
            let keyID = try #require(try h.store.authenticate(apiKey: client.key!)).keyID
            // Straight through the store, as `pfc-server keys revoke` in another process does.
            try h.store.revokeAPIKey(id: keyID)
            let took = try #require(try Self.secondsUntil(401, client), "the revoked key still works after 10 s")
            #expect(took <= Self.bound + Self.slack, "401 after \(took) s; the bound is \(Self.bound) s")
            #expect(try client.request("GET", "/v1/datasets").status == 401, "and stays refused")
            #expect(try h.client.request("GET", "/v1/datasets").status == 200, "the tenant's other key is untouched")
        }
    }

    @Test(arguments: Backend.all)
    func anUnknownKeyThatIsThenCreatedWorksWithinTheBound(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            let secret = APIKeys.generate()
            let client = TestClient(port: h.server.port, key: secret)
            for _ in 0..<5 { #expect(try client.request("GET", "/v1/datasets").status == 401) }
            // Created straight in the store, as `pfc-server keys create` in another process does.
            try h.store.insert(APIKey(tenantID: try h.tenantID(), secret: secret))
            let took = try #require(try Self.secondsUntil(200, client), "the new key is still refused after 10 s")
            #expect(took <= Self.bound + Self.slack, "200 after \(took) s; the bound is \(Self.bound) s")
        }
    }

    @Test(arguments: Backend.all)
    func theRateLimiterStillCountsPerKeyBehindTheCache(backend: Backend) throws {
        var limits = TenantLimits()
        limits.requestsPerSecond = 0.01
        limits.requestBurst = 3
        try LimitsHarness.with(backend, limits: limits) { h in
            let statuses = try (0..<5).map { _ in try h.client.request("GET", "/v1/datasets").status }
            #expect(statuses == [200, 200, 200, 429, 429])
            #expect(try h.newTenantClient().request("GET", "/v1/datasets").status == 200, "another key has its own bucket")
        }
    }

    // MARK: - The cache over a real store, with a counter of its own (other tests' key changes
    // would otherwise empty it)

    static func withStore(_ backend: Backend, _ body: (any Store, String) throws -> Void) throws {
        let location = HarnessLocation(backend)
        defer { location.destroy() }
        let store = try location.openStore()
        defer { store.close() }
        try body(store, try APIKeys.create(in: store, tenantName: "cache-\(UUID().uuidString.prefix(8))"))
    }

    static func authenticate(_ cache: AuthCache, _ store: any Store, _ secret: String, at now: ContinuousClock.Instant = .now) throws -> AuthenticatedKey? {
        try cache.authenticate(secret: secret, now: now) { try TenantAuthMiddleware.lookUp($0, in: store) }
    }

    @Test(arguments: Backend.all)
    func aCachedKeyLastsItsLifetimeAndNoLonger(backend: Backend) throws {
        try Self.withStore(backend) { store, secret in
            let cache = AuthCache(lifetime: .seconds(1), capacity: 10, refusedCapacity: 10, changes: KeyChangeCounter())
            let t0 = ContinuousClock.now
            let key = try #require(try Self.authenticate(cache, store, secret, at: t0))
            try store.revokeAPIKey(id: key.keyID)
            #expect(try Self.authenticate(cache, store, secret, at: t0 + .milliseconds(900)) == key, "served from the cache")
            #expect(cache.hitsAndMisses.hits == 1 && cache.hitsAndMisses.misses == 1)
            #expect(try Self.authenticate(cache, store, secret, at: t0 + .milliseconds(1001)) == nil, "past the lifetime")
            #expect(try Self.authenticate(cache, store, secret, at: t0 + .milliseconds(1500)) == nil)
        }
    }

    @Test(arguments: Backend.all)
    func aRotatedKeysGracePeriodEndsOnTimeDespiteALongLifetime(backend: Backend) throws {
        try Self.withStore(backend) { store, secret in
            let cache = AuthCache(lifetime: .seconds(60), capacity: 10, refusedCapacity: 10, changes: KeyChangeCounter())
            let keyID = try #require(try store.authenticate(apiKey: secret)).keyID
            let rotated = try store.rotateAPIKey(id: keyID, graceSeconds: 0.6)
            #expect(try Self.authenticate(cache, store, secret)?.keyID == keyID, "in its grace period")
            #expect(try Self.authenticate(cache, store, rotated.secret)?.keyID == rotated.newKey.id)
            Thread.sleep(forTimeInterval: 0.8)
            #expect(try Self.authenticate(cache, store, secret) == nil, "the entry ends with the grace period, not after 60 s")
            #expect(try Self.authenticate(cache, store, rotated.secret)?.keyID == rotated.newKey.id)
        }
    }

    @Test(arguments: Backend.all)
    func anUnknownSecretIsRefusedFromTheCacheUntilItsLifetimeEnds(backend: Backend) throws {
        try Self.withStore(backend) { store, secret in
            let cache = AuthCache(lifetime: .seconds(1), capacity: 10, refusedCapacity: 10, changes: KeyChangeCounter())
            let tenantID = try #require(try store.authenticate(apiKey: secret)).tenant.id
            let unknown = APIKeys.generate()
            let t0 = ContinuousClock.now
            #expect(try Self.authenticate(cache, store, unknown, at: t0) == nil)
            try store.insert(APIKey(tenantID: tenantID, secret: unknown))
            #expect(try Self.authenticate(cache, store, unknown, at: t0 + .milliseconds(900)) == nil, "refused from the cache")
            #expect(try Self.authenticate(cache, store, unknown, at: t0 + .milliseconds(1001))?.tenant.id == tenantID)
        }
    }

    @Test(arguments: Backend.all)
    func changesThroughAPIKeysTakeEffectAtOnce(backend: Backend) throws {
        try Self.withStore(backend) { store, secret in
            let cache = AuthCache(lifetime: .seconds(60), capacity: 10, refusedCapacity: 10)
            let key = try #require(try Self.authenticate(cache, store, secret))
            try APIKeys.revoke(in: store, keyID: key.keyID)
            #expect(try Self.authenticate(cache, store, secret) == nil)
        }
    }

    // MARK: - The cache's own rules

    static func fakeKey(_ n: Int) -> AuthenticatedKey {
        AuthenticatedKey(tenant: Tenant(id: "t\(n)", name: "tenant \(n)", createdAt: Date(timeIntervalSince1970: 0)), keyID: "k\(n)")
    }

    @Test func aFloodOfOneBadSecretAsksTheDatabaseOncePerLifetime() throws {
        let cache = AuthCache(lifetime: .seconds(2), capacity: 10, refusedCapacity: 10, changes: KeyChangeCounter())
        let lookups = Mutex(0)
        let t0 = ContinuousClock.now
        DispatchQueue.concurrentPerform(iterations: 8) { thread in
            for i in 0..<1000 {
                let key = try? cache.authenticate(secret: "bad", now: t0 + .milliseconds(i)) { _ in
                    lookups.withLock { $0 += 1 }
                    return nil
                }
                #expect(key == nil)
            }
        }
        // Threads racing on the first miss may each ask once.
        #expect((1...8).contains(lookups.withLock { $0 }))
        _ = try cache.authenticate(secret: "bad", now: t0 + .milliseconds(2001)) { _ in lookups.withLock { $0 += 1 }; return nil }
        #expect((2...9).contains(lookups.withLock { $0 }))
    }

    @Test func bothTablesStayBounded() throws {
        let cache = AuthCache(lifetime: .seconds(60), capacity: 100, refusedCapacity: 50, changes: KeyChangeCounter())
        let now = ContinuousClock.now
        for n in 0..<10_000 {
            let valid = try cache.authenticate(secret: "good-\(n)", now: now) { _ in (Self.fakeKey(n), nil) }
            #expect(valid == Self.fakeKey(n))
            #expect(try cache.authenticate(secret: "bad-\(n)", now: now) { _ in nil } == nil)
            let counts = cache.counts
            if counts.valid > 100 || counts.refused > 50 { Issue.record("over capacity: \(counts)"); break }
        }
        // The most recent ones are still there.
        #expect(try cache.authenticate(secret: "good-9999", now: now) { _ in Issue.record("evicted"); return nil } == Self.fakeKey(9999))
    }

    @Test func concurrentKeysGetTheirOwnAnswers() throws {
        let cache = AuthCache(lifetime: .milliseconds(5), capacity: 16, refusedCapacity: 16, changes: KeyChangeCounter())
        let wrong = Mutex(0)
        DispatchQueue.concurrentPerform(iterations: 8) { thread in
            for i in 0..<2000 {
                let n = (thread * 7 + i) % 40
                let got = try? cache.authenticate(secret: "s\(n)") { _ in n % 3 == 0 ? nil : (Self.fakeKey(n), nil) }
                if got != (n % 3 == 0 ? nil : Self.fakeKey(n)) { wrong.withLock { $0 += 1 } }
            }
        }
        #expect(wrong.withLock { $0 } == 0)
        #expect(cache.counts.valid <= 16 && cache.counts.refused <= 16)
    }
}
