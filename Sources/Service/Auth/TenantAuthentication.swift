// TenantAuthentication: bearer API keys → tenant, and the default tenant made on first start.
import Foundation
import HTTP
import Logging
import Storage

/// Authenticates `/v1/…` requests by `Authorization: Bearer <key>`; the tenant id becomes the
/// request's principal and the key's id the attribute `keyIDAttribute`. Other paths (health,
/// metrics, the OpenAPI document) need no key. With a `cache`, a key's answer (valid or refused)
/// is reused for up to the cache's lifetime, so a key revoked by another process stops within it
/// (see `AuthCache`); without one every request reads the key's row.
struct TenantAuthMiddleware: Middleware {
    /// The `RequestContext.attributes` entry holding the authenticated key's id.
    static let keyIDAttribute = "api_key_id"
    let store: any Store
    var cache: AuthCache?

    func handle(_ request: Request, context: RequestContext,
                next: (Request, RequestContext) throws -> Response) throws -> Response {
        guard request.path.hasPrefix("/v1/") || request.path == "/v1" else { return try next(request, context) }
        let unauthorized = HTTPError(.unauthorized, message: "send a valid API key as 'Authorization: Bearer <key>'",
                                     headers: ["WWW-Authenticate": "Bearer"])
        guard let header = request.headers["Authorization"], let secret = Self.bearerSecret(header) else { throw unauthorized }
        guard let key = try storeCall({ try authenticate(secret) }) else { throw unauthorized }
        var ctx = context
        ctx.principal = key.tenant.id
        ctx.attributes[Self.keyIDAttribute] = key.keyID
        return try next(request, ctx)
    }

    /// The secret of an `Authorization` value `Bearer <secret>` (the scheme in any case, blanks around
    /// the secret trimmed), nil when it is another scheme, or the secret is empty or over 200 characters.
    /// An ASCII value (every real key) is read byte by byte, without `lowercased()` and Foundation's
    /// trimming, which cost a request more than the key's SHA-256; any other takes the general path,
    /// with the same answers.
    static func bearerSecret(_ header: String) -> String? {
        let bytes = header.utf8
        if bytes.allSatisfy({ $0 < 0x80 }) {
            let scheme = Array("bearer ".utf8)
            guard bytes.count >= scheme.count, zip(bytes, scheme).allSatisfy({ (0x41...0x5A ~= $0 ? $0 | 0x20 : $0) == $1 }) else { return nil }
            var start = bytes.index(bytes.startIndex, offsetBy: scheme.count), end = bytes.endIndex
            while start < end, bytes[start] == 0x20 || bytes[start] == 0x09 { start = bytes.index(after: start) }
            while start < end, bytes[bytes.index(before: end)] == 0x20 || bytes[bytes.index(before: end)] == 0x09 { end = bytes.index(before: end) }
            let count = bytes.distance(from: start, to: end)
            guard count > 0, count <= 200 else { return nil }
            return String(header[start..<end])
        }
        guard header.lowercased().hasPrefix("bearer ") else { return nil }
        let secret = header.dropFirst(7).trimmingCharacters(in: .whitespaces)
        guard !secret.isEmpty, secret.count <= 200 else { return nil }
        return secret
    }

    private func authenticate(_ secret: String) throws -> AuthenticatedKey? {
        guard let cache else { return try store.authenticate(apiKey: secret) }
        return try cache.authenticate(secret: secret) { [store] in try Self.lookUp($0, in: store) }
    }

    /// The key `secret` belongs to and when it stops working: a key in a rotation's grace period
    /// has its end in `revoked_at`, and a cached answer must not outlive it.
    static func lookUp(_ secret: String, in store: any Store) throws -> (key: AuthenticatedKey, validUntil: Date?)? {
        guard let key = try store.authenticate(apiKey: secret) else { return nil }
        return (key, try store.apiKey(id: key.keyID).revokedAt)
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
        KeyChangeCounter.process.record()
        return key
    }

    /// Revokes the key with id `keyID` (of any tenant) at once: its next request to a server in
    /// this process answers 401, and within the auth cache's lifetime (2 s) on other processes.
    /// Returns the key as it now stands.
    @discardableResult
    public static func revoke(in store: any Store, keyID: String) throws -> APIKey {
        defer { KeyChangeCounter.process.record() }
        return try store.transaction { s in
            try s.revokeAPIKey(id: keyID)
            return try s.apiKey(id: keyID)
        }
    }

    /// Issues a new key for the tenant of `keyID` and revokes `keyID` after `graceSeconds` (0:
    /// at once), in one transaction. The new secret is in the result, the only place it appears.
    public static func rotate(in store: any Store, keyID: String, graceSeconds: Double = 0) throws -> RotatedAPIKey {
        defer { KeyChangeCounter.process.record() }
        return try store.rotateAPIKey(id: keyID, graceSeconds: graceSeconds)
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
