// Tenant look-ups the service needs at start-up (bootstrap of the default tenant) and for the CLI.
import Foundation

extension StoreOperations {
    /// The tenant named `name`, if any (the oldest, should names repeat).
    public func tenant(named name: String) throws -> Tenant? {
        try withSession(writing: false) { session in
            try session.connection.queryOne(
                "SELECT id, name, created_at FROM tenants WHERE name = \(name) ORDER BY created_at, id LIMIT 1"
            ).map(Tenant.init(row:))
        }
    }

    /// How many tenants exist.
    public func tenantCount() throws -> Int {
        try withSession(writing: false) { session in
            try session.connection.queryOne("SELECT count(*) AS n FROM tenants")?.int("n") ?? 0
        }
    }
}
