// CSSL: libssl for the HTTP module's TLS transport. OpenSSL 3 spells several settings as macros over
// SSL_CTX_ctrl, which Swift cannot import; the static inline functions below wrap them.
#ifndef PFC_CSSL_SHIM_H
#define PFC_CSSL_SHIM_H

#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

/// SSL_CTX_set_min_proto_version (a macro); 1 on success.
static inline int pfc_ssl_ctx_set_min_proto_version(SSL_CTX *ctx, int version) {
    return (int)SSL_CTX_set_min_proto_version(ctx, version);
}

/// SSL_CTX_get_min_proto_version (a macro).
static inline int pfc_ssl_ctx_get_min_proto_version(SSL_CTX *ctx) {
    return (int)SSL_CTX_get_min_proto_version(ctx);
}

/// Non-blocking writes from a buffer that may move and may be taken in part.
static inline void pfc_ssl_ctx_set_server_modes(SSL_CTX *ctx) {
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
}

/// No renegotiation (a client-driven CPU sink), no compression (CRIME), the server's cipher order,
/// and a peer's TCP close without close_notify read as an ordinary end of stream.
static inline void pfc_ssl_ctx_set_server_options(SSL_CTX *ctx) {
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE
                             | SSL_OP_IGNORE_UNEXPECTED_EOF);
}

/// A peer's TCP close without close_notify read as an end of stream (for clients in tests).
static inline void pfc_ssl_ctx_ignore_unexpected_eof(SSL_CTX *ctx) { SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF); }

/// SSL_CTX_set_max_proto_version (a macro); 1 on success.
static inline int pfc_ssl_ctx_set_max_proto_version(SSL_CTX *ctx, int version) {
    return (int)SSL_CTX_set_max_proto_version(ctx, version);
}

/// The negotiated protocol version of an established session (TLS1_2_VERSION, TLS1_3_VERSION, …).
static inline int pfc_ssl_version(const SSL *ssl) { return SSL_version(ssl); }

/// The peer certificate of a client-side session (SSL_get_peer_certificate is a macro in 3.0);
/// the caller frees it with X509_free.
static inline X509 *pfc_ssl_get1_peer_certificate(const SSL *ssl) { return SSL_get1_peer_certificate(ssl); }

/// SSL_set_tlsext_host_name (a macro): SNI for a client-side session.
static inline int pfc_ssl_set_host_name(SSL *ssl, const char *name) { return (int)SSL_set_tlsext_host_name(ssl, name); }

#endif
