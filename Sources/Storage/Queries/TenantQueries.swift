// Tenants and API keys.
import Foundation

extension StoreOperations {
    /// Inserts a tenant.
    public func insert(_ tenant: Tenant) throws {
        try withSession(writing: true) { session in
            try session.connection.execute("INSERT INTO tenants (id, name, created_at) VALUES (\(tenant.id), \(tenant.name), \(tenant.createdAt))")
        }
    }

    /// The tenant with this id, or `notFound`.
    public func tenant(id: String) throws -> Tenant {
        try withSession(writing: false) { session in
            try session.one("SELECT id, name, created_at FROM tenants WHERE id = \(id)", notFound: "tenant \(id)", Tenant.init(row:))
        }
    }

    /// Inserts an API key record (its hash; see `APIKey.init(tenantID:secret:)`).
    public func insert(_ key: APIKey) throws {
        try withSession(writing: true) { session in
            try session.connection.execute("""
                INSERT INTO api_keys (id, tenant_id, key_sha256, label, created_at, revoked_at)
                VALUES (\(key.id), \(key.tenantID), \(key.keySHA256), \(key.label), \(key.createdAt), \(key.revokedAt))
                """)
        }
    }

    /// The tenant a presented secret belongs to: looked up by its SHA-256; nil if unknown or revoked.
    public func tenant(forAPIKey secret: String) throws -> Tenant? {
        try withSession(writing: false) { session in
            try session.connection.queryOne("""
                SELECT t.id, t.name, t.created_at FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
                WHERE k.key_sha256 = \(APIKey.hash(secret)) AND k.revoked_at IS NULL
                """).map(Tenant.init(row:))
        }
    }

    /// The tenant's API keys (hashes only), oldest first.
    public func apiKeys(tenantID: String) throws -> [APIKey] {
        try withSession(writing: false) { session in
            try session.connection.query("""
                SELECT id, tenant_id, key_sha256, label, created_at, revoked_at FROM api_keys
                WHERE tenant_id = \(tenantID) ORDER BY created_at, id
                """).map(APIKey.init(row:))
        }
    }

    /// Revokes a key; `notFound` if the tenant has no such key.
    public func revokeAPIKey(id: String, tenantID: String, at date: Date = StoreClock.now()) throws {
        try withSession(writing: true) { session in
            try session.requireChange(
                "UPDATE api_keys SET revoked_at = \(date) WHERE id = \(id) AND tenant_id = \(tenantID) AND revoked_at IS NULL",
                notFound: "api key \(id)")
        }
    }
}
