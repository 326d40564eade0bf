// Tenants (API keys: APIKeyQueries.swift).
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
}
