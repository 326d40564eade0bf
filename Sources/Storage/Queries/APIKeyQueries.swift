// API keys: insert, authenticate, list, revoke, rotate. A key is valid while `revoked_at` is NULL
// or still in the future (a rotated key's grace period); the check runs on every request, so a
// revocation holds from the next request on, on every replica.
import Foundation

private let keyColumns: SQL = "id, tenant_id, key_sha256, label, created_at, revoked_at"

/// A presented secret that authenticated: the key's tenant and the key's id.
public struct AuthenticatedKey: Sendable, Equatable {
    /// The tenant the key belongs to.
    public var tenant: Tenant
    /// The key's record id (not the secret).
    public var keyID: String
}

/// What `rotateAPIKey` made: the new secret (shown once, never stored) and both records.
public struct RotatedAPIKey: Sendable {
    /// The new key's secret, to hand to the user once.
    public var secret: String
    /// The new key's record.
    public var newKey: APIKey
    /// The old key's record, with `revokedAt` set to when it stops working.
    public var oldKey: APIKey
}

extension StoreOperations {
    /// Inserts an API key record (its hash; see `APIKey.init(tenantID:secret:)`).
    public func insert(_ key: APIKey) throws {
        try withSession(writing: true) { session in
            try session.connection.execute("""
                INSERT INTO api_keys (\(sql: keyColumns))
                VALUES (\(key.id), \(key.tenantID), \(key.keySHA256), \(key.label), \(key.createdAt), \(key.revokedAt))
                """)
        }
    }

    /// The key and tenant a presented secret belongs to (looked up by its SHA-256); nil if the
    /// secret is unknown or its key is revoked at `now`.
    public func authenticate(apiKey secret: String, now: Date = StoreClock.now()) throws -> AuthenticatedKey? {
        try withSession(writing: false) { session in
            try session.connection.queryOne("""
                SELECT t.id, t.name, t.created_at, k.id AS key_id FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
                WHERE k.key_sha256 = \(APIKey.hash(secret)) AND (k.revoked_at IS NULL OR k.revoked_at > \(now))
                """).map { AuthenticatedKey(tenant: try Tenant(row: $0), keyID: try $0.string("key_id")) }
        }
    }

    /// The tenant a presented secret belongs to; nil if unknown or revoked.
    public func tenant(forAPIKey secret: String) throws -> Tenant? {
        try authenticate(apiKey: secret)?.tenant
    }

    /// The tenant's API keys (hashes only), oldest first, revoked ones included.
    public func apiKeys(tenantID: String) throws -> [APIKey] {
        try withSession(writing: false) { session in
            try session.connection.query("SELECT \(sql: keyColumns) FROM api_keys WHERE tenant_id = \(tenantID) ORDER BY created_at, id")
                .map(APIKey.init(row:))
        }
    }

    /// Every tenant's API keys (hashes only), oldest first: for the operator's CLI.
    public func allAPIKeys() throws -> [APIKey] {
        try withSession(writing: false) { session in
            try session.connection.query("SELECT \(sql: keyColumns) FROM api_keys ORDER BY created_at, id").map(APIKey.init(row:))
        }
    }

    /// The key with this id, of any tenant, or `notFound`.
    public func apiKey(id: String) throws -> APIKey {
        try withSession(writing: false) { session in
            try session.one("SELECT \(sql: keyColumns) FROM api_keys WHERE id = \(id)", notFound: "api key \(id)", APIKey.init(row:))
        }
    }

    /// Revokes the tenant's key at `date` (a key in its grace period loses the rest of it);
    /// `notFound` if the tenant has no such key still valid.
    public func revokeAPIKey(id: String, tenantID: String, at date: Date = StoreClock.now()) throws {
        try withSession(writing: true) { session in
            try session.requireChange("""
                UPDATE api_keys SET revoked_at = \(date)
                WHERE id = \(id) AND tenant_id = \(tenantID) AND (revoked_at IS NULL OR revoked_at > \(date))
                """, notFound: "valid api key \(id)")
        }
    }

    /// Revokes a key of any tenant (the operator's CLI); `notFound` if no such key is still valid.
    public func revokeAPIKey(id: String, at date: Date = StoreClock.now()) throws {
        try withSession(writing: true) { session in
            let key = try session.apiKey(id: id)
            try session.revokeAPIKey(id: id, tenantID: key.tenantID, at: date)
        }
    }

    /// Replaces a valid key with a new one for the same tenant, in one transaction: the new key
    /// works at once; the old one stops after `graceSeconds` (0: at once). The new key keeps the
    /// old label unless `label` is given. `notFound` if no such key is still valid.
    public func rotateAPIKey(id: String, graceSeconds: TimeInterval = 0, label: String? = nil,
                             now: Date = StoreClock.now()) throws -> RotatedAPIKey {
        guard graceSeconds.isFinite, graceSeconds >= 0 else { throw StoreError.invalidArgument("graceSeconds must be ≥ 0") }
        return try withSession(writing: true) { session in
            var old = try session.apiKey(id: id)
            if let revoked = old.revokedAt, revoked <= now { throw StoreError.notFound("valid api key \(id)") }
            let secret = APIKey.generateSecret()
            let new = APIKey(tenantID: old.tenantID, secret: secret, label: label ?? old.label, createdAt: now)
            try session.insert(new)
            let end = min(old.revokedAt ?? .distantFuture, dateFromMicroseconds(microsecondsSince1970(now.addingTimeInterval(graceSeconds))))
            try session.connection.execute("UPDATE api_keys SET revoked_at = \(end) WHERE id = \(id)")
            old.revokedAt = end
            return RotatedAPIKey(secret: secret, newKey: new, oldKey: old)
        }
    }
}
