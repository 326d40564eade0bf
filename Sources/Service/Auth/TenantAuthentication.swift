// TenantAuthentication: bearer API keys → tenant, and the default tenant made on first start.
import Foundation
import HTTP
import Logging
import Storage

/// Authenticates `/v1/…` requests by `Authorization: Bearer <key>`; the tenant id becomes the
/// request's principal and the key's id the attribute `keyIDAttribute`. Other paths (health,
/// metrics, the OpenAPI document) need no key. Every request reads the key's row, so a revoked
/// key is refused from the next request on.
struct TenantAuthMiddleware: Middleware {
    /// The `RequestContext.attributes` entry holding the authenticated key's id.
    static let keyIDAttribute = "api_key_id"
    let store: any Store

    func handle(_ request: Request, context: RequestContext,
                next: (Request, RequestContext) throws -> Response) throws -> Response {
        guard request.path.hasPrefix("/v1/") || request.path == "/v1" else { return try next(request, context) }
        let unauthorized = HTTPError(.unauthorized, message: "send a valid API key as 'Authorization: Bearer <key>'",
                                     headers: ["WWW-Authenticate": "Bearer"])
        guard let header = request.headers["Authorization"], header.lowercased().hasPrefix("bearer ") else { throw unauthorized }
        let secret = header.dropFirst(7).trimmingCharacters(in: .whitespaces)
        guard !secret.isEmpty, secret.count <= 200, let key = try storeCall({ try store.authenticate(apiKey: secret) }) else {
            throw unauthorized
        }
        var ctx = context
        ctx.principal = key.tenant.id
        ctx.attributes[Self.keyIDAttribute] = key.keyID
        return try next(request, ctx)
    }
}

extension RequestContext {
    /// The authenticated tenant (set by `TenantAuthMiddleware` on every `/v1/…` route).
    func tenantID() throws -> String {
        guard let principal else { throw HTTPError(.unauthorized, message: "missing API key", headers: ["WWW-Authenticate": "Bearer"]) }
        return principal
    }
}

/// Creating, revoking and rotating tenants' keys (the `pfc-server keys` commands).
public enum APIKeys {
    /// A new random key: "pfc_" and 64 hex digits (256 bits from OpenSSL's generator).
    public static func generate() -> String { APIKey.generateSecret() }

    /// Creates a key for the tenant named `tenantName` (creating the tenant when needed) and
    /// returns the key; only its SHA-256 is stored.
    public static func create(in store: any Store, tenantName: String, label: String = "") throws -> String {
        let key = generate()
        try store.transaction { s in
            let tenant = try s.tenant(named: tenantName) ?? {
                let t = Tenant(name: tenantName)
                try s.insert(t)
                return t
            }()
            try s.insert(APIKey(tenantID: tenant.id, secret: key, label: label))
        }
        return key
    }

    /// Revokes the key with id `keyID` (of any tenant) at once: its next request answers 401.
    /// Returns the key as it now stands.
    @discardableResult
    public static func revoke(in store: any Store, keyID: String) throws -> APIKey {
        try store.transaction { s in
            try s.revokeAPIKey(id: keyID)
            return try s.apiKey(id: keyID)
        }
    }

    /// Issues a new key for the tenant of `keyID` and revokes `keyID` after `graceSeconds` (0:
    /// at once), in one transaction. The new secret is in the result, the only place it appears.
    public static func rotate(in store: any Store, keyID: String, graceSeconds: Double = 0) throws -> RotatedAPIKey {
        try store.rotateAPIKey(id: keyID, graceSeconds: graceSeconds)
    }

    /// On an empty database: creates the `default` tenant and a key, writes the key to
    /// `<dataDirectory>/default-api-key` (mode 0600) and returns it. Nil when tenants already exist.
    public static func bootstrapDefaultTenant(store: any Store, dataDirectory: String) throws -> String? {
        guard try store.tenantCount() == 0 else { return nil }
        let key = try create(in: store, tenantName: "default", label: "bootstrap")
        try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
        let path = (dataDirectory as NSString).appendingPathComponent("default-api-key")
        _ = FileManager.default.createFile(atPath: path, contents: Data((key + "\n").utf8), attributes: [.posixPermissions: 0o600])
        return key
    }
}
