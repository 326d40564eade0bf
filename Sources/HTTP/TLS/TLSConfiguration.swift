// TLSConfiguration: where the server's certificate chain and private key live (PEM files), and
// TLSError, what OpenSSL said when they could not be used.

/// The PEM files of an HTTPS listener. TLS 1.2 and 1.3 only; the files are read at `start()` and
/// again by `HTTPServer.reloadTLS()` (SIGHUP in `pfc-server serve`).
public struct TLSConfiguration: Sendable, Equatable {
    /// The certificate chain, leaf first (PEM).
    public var certificatePath: String
    /// The private key of the leaf certificate (PEM, unencrypted).
    public var privateKeyPath: String

    /// Makes a configuration from the two file paths.
    public init(certificatePath: String, privateKeyPath: String) {
        self.certificatePath = certificatePath
        self.privateKeyPath = privateKeyPath
    }
}

/// A TLS set-up failure: what was being done and OpenSSL's error queue.
public struct TLSError: Error, Sendable, CustomStringConvertible {
    /// What failed, e.g. "load certificate chain /etc/pfc/cert.pem".
    public let operation: String
    /// OpenSSL's messages, oldest first (may be empty).
    public let details: [String]
    /// "load certificate chain cert.pem: error:…".
    public var description: String { details.isEmpty ? operation : "\(operation): \(details.joined(separator: "; "))" }
}
