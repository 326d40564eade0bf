// TLSContext: one OpenSSL SSL_CTX built from a certificate chain and key, configured for a
// non-blocking server (TLS 1.2 minimum, partial writes, no renegotiation). Immutable once built,
// so any thread may make sessions from it; a reload builds a new one and swaps it in.

internal import CSSL

/// A server SSL_CTX. Sessions made from it hold their own reference, so releasing the context
/// after a swap never affects open connections.
final class TLSContext: @unchecked Sendable {  // the SSL_CTX is never mutated after init
    let context: OpaquePointer
    /// SHA-256 of the leaf certificate (DER), lowercase hex.
    let certificateSHA256: String

    init(_ configuration: TLSConfiguration) throws(TLSError) {
        ERR_clear_error()
        guard let ctx = SSL_CTX_new(TLS_server_method()) else { throw TLSError.fromQueue("SSL_CTX_new") }
        do {
            certificateSHA256 = try Self.configure(ctx, configuration)
        } catch {
            SSL_CTX_free(ctx)
            throw error
        }
        context = ctx
    }

    /// Protocol floor, options, certificate chain and key; returns the leaf's SHA-256.
    private static func configure(_ ctx: OpaquePointer, _ configuration: TLSConfiguration) throws(TLSError) -> String {
        guard pfc_ssl_ctx_set_min_proto_version(ctx, TLS1_2_VERSION) == 1 else {
            throw TLSError.fromQueue("set minimum protocol TLS 1.2")
        }
        pfc_ssl_ctx_set_server_options(ctx)
        pfc_ssl_ctx_set_server_modes(ctx)
        guard SSL_CTX_use_certificate_chain_file(ctx, configuration.certificatePath) == 1 else {
            throw TLSError.fromQueue("load certificate chain \(configuration.certificatePath)")
        }
        guard SSL_CTX_use_PrivateKey_file(ctx, configuration.privateKeyPath, SSL_FILETYPE_PEM) == 1 else {
            throw TLSError.fromQueue("load private key \(configuration.privateKeyPath)")
        }
        guard SSL_CTX_check_private_key(ctx) == 1 else {
            throw TLSError.fromQueue("private key \(configuration.privateKeyPath) does not match the certificate")
        }
        guard let leaf = SSL_CTX_get0_certificate(ctx), let digest = sha256(of: leaf) else {
            throw TLSError.fromQueue("read the leaf certificate")
        }
        return digest
    }

    deinit { SSL_CTX_free(context) }

    /// A server session on `fd` (accept state); nil when OpenSSL cannot allocate one.
    func makeSession(fd: Int32) -> TLSSession? {
        ERR_clear_error()
        guard let ssl = SSL_new(context) else { return nil }
        guard SSL_set_fd(ssl, fd) == 1 else { SSL_free(ssl); return nil }
        SSL_set_accept_state(ssl)
        return TLSSession(ssl: ssl)
    }

    /// SHA-256 of a certificate's DER encoding, lowercase hex.
    static func sha256(of certificate: OpaquePointer) -> String? {
        var md = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        guard X509_digest(certificate, EVP_sha256(), &md, &length) == 1 else { return nil }
        return md.prefix(Int(length)).map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }
}

extension TLSError {
    /// An error with (and clearing) the calling thread's OpenSSL error queue.
    static func fromQueue(_ operation: String) -> TLSError {
        TLSError(operation: operation, details: drainOpenSSLErrors())
    }
}

/// Every message in the calling thread's OpenSSL error queue, oldest first; empties the queue.
func drainOpenSSLErrors() -> [String] {
    var out: [String] = []
    while true {
        let code = ERR_get_error()
        if code == 0 { break }
        var text = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(code, &text, text.count)
        out.append(String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }
    return out
}
