// Issue 12, keys: a revoked key answers 401 from its next request on, and a rotated key is
// replaced by a new one of the same tenant (at once, or after a grace period), over real
// sockets and both stores, through the same APIKeys calls `pfc-server keys` makes.
import Foundation
import Testing
@testable import Service
@testable import Storage
import TestSupport

@Suite struct KeyTests {
    func keyID(_ h: ServiceHarness, _ secret: String) throws -> String {
        try #require(try h.store.authenticate(apiKey: secret)).keyID
    }

    @Test(arguments: Backend.all)
    func revokedKeyIs401OnItsNextRequest(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            let tenant = try h.store.tenant(id: try h.tenantID())
            let second = TestClient(port: h.server.port, key: try APIKeys.create(in: h.store, tenantName: tenant.name, label: "laptop"))
            let ds = try second.json("POST", "/v1/datasets", QuotaTests.twoRows)
            #expect(ds.status == 201)
            let revoked = try APIKeys.revoke(in: h.store, keyID: try keyID(h, second.key!))
            #expect(revoked.revokedAt != nil && revoked.label == "laptop")
            let refused = try second.request("GET", "/v1/datasets")
            #expect(refused.status == 401 && refused.errorCode == "unauthorized" && refused.header("WWW-Authenticate") == "Bearer")
            // The tenant's other key, and what the revoked key made, are untouched.
            #expect(try h.client.request("GET", "/v1/datasets/\(ds.object["id"] as! String)").status == 200)
            #expect(throws: StoreError.self) { try APIKeys.revoke(in: h.store, keyID: revoked.id) }
        }
    }

    @Test(arguments: Backend.all)
    func rotatedKeyReplacesTheOldOneForTheSameTenant(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            let old = h.client
            let ds = try old.json("POST", "/v1/datasets", QuotaTests.twoRows).object["id"] as! String
            let rotated = try APIKeys.rotate(in: h.store, keyID: try keyID(h, h.key))
            let new = TestClient(port: h.server.port, key: rotated.secret)
            #expect(try old.request("GET", "/v1/datasets").status == 401, "without a grace period the old key stops at once")
            #expect(try new.request("GET", "/v1/datasets/\(ds)").status == 200, "the new key is the same tenant's")

            // With a grace period both work until it ends (or the old key is revoked).
            let again = try APIKeys.rotate(in: h.store, keyID: rotated.newKey.id, graceSeconds: 300)
            let newest = TestClient(port: h.server.port, key: again.secret)
            #expect(try new.request("GET", "/v1/datasets").status == 200)
            #expect(try newest.request("GET", "/v1/datasets/\(ds)").status == 200)
            try APIKeys.revoke(in: h.store, keyID: rotated.newKey.id)
            #expect(try new.request("GET", "/v1/datasets").status == 401)
            #expect(try newest.request("GET", "/v1/datasets").status == 200)
            let tenant = try #require(try h.store.authenticate(apiKey: again.secret)).tenant.id
            #expect(try h.store.apiKeys(tenantID: tenant).filter { $0.isValid() }.map(\.id) == [again.newKey.id])
        }
    }
}
