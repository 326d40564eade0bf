// Tenant and APIKey: who owns what, and how a request proves it.
import Foundation

/// An account that owns datasets, models, jobs and analyses.
public struct Tenant: Codable, Sendable, Equatable {
    public var id: String
    public var name: String
    public var createdAt: Date

    /// A new tenant with a fresh id.
    public init(id: String = StoreID.make(), name: String, createdAt: Date = StoreClock.now()) {
        self.id = id
        self.name = name
        self.createdAt = createdAt
    }

    init(row: Row) throws {
        self.init(id: try row.string("id"), name: try row.string("name"), createdAt: try row.date("created_at"))
    }
}

/// An API key's record: only the SHA-256 of the secret is stored, never the secret.
public struct APIKey: Codable, Sendable, Equatable {
    public var id: String
    public var tenantID: String
    /// Lowercase hex SHA-256 of the secret.
    public var keySHA256: String
    public var label: String
    public var createdAt: Date
    public var revokedAt: Date?

    /// A record for `secret` (hashed here; the secret itself is not kept).
    public init(id: String = StoreID.make(), tenantID: String, secret: String, label: String = "",
                createdAt: Date = StoreClock.now()) {
        self.id = id
        self.tenantID = tenantID
        self.keySHA256 = APIKey.hash(secret)
        self.label = label
        self.createdAt = createdAt
        self.revokedAt = nil
    }

    /// Whether the key authenticates at `date`: never revoked, or revoked only from a later
    /// time (a rotated key's grace period).
    public func isValid(at date: Date = StoreClock.now()) -> Bool { revokedAt.map { $0 > date } ?? true }

    /// Lowercase hex SHA-256 of a secret (OpenSSL).
    public static func hash(_ secret: String) -> String { SHA256Hex.digest(secret) }

    /// A new random secret to hand to a user once: `pfc_` and 64 hex digits (256 bits).
    public static func generateSecret() -> String { "pfc_" + randomHex(byteCount: 32) }

    init(row: Row) throws {
        id = try row.string("id")
        tenantID = try row.string("tenant_id")
        keySHA256 = try row.string("key_sha256")
        label = try row.string("label")
        createdAt = try row.date("created_at")
        revokedAt = try row.optionalDate("revoked_at")
    }
}
