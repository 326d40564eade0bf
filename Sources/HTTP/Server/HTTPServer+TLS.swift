// HTTPServer+TLS: certificate reload (SIGHUP in `pfc-server serve`) and what the current
// certificate is. A reload builds a whole new SSL_CTX and swaps it for new connections only.

import Dispatch
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

extension HTTPServer {
    /// Re-reads `configuration.tls`'s certificate and key and serves new connections with them;
    /// open connections keep the certificate they were made with. On any error the current
    /// certificate stays in use and the error is logged and thrown. Returns the new leaf's SHA-256.
    @discardableResult
    public func reloadTLS() throws(TLSError) -> String {
        guard let tls = configuration.tls else { throw TLSError(operation: "reload: the server was started without TLS", details: []) }
        let context: TLSContext
        do {
            context = try TLSContext(tls)
        } catch {
            core.logger.error("TLS reload failed; keeping the current certificate", metadata: [
                "error": .string(error.description), "certificate-sha256": .string(tlsCertificateSHA256 ?? "-")])
            throw error
        }
        core.installTLS(context)
        core.logger.info("TLS certificate reloaded", metadata: ["certificate-sha256": .string(context.certificateSHA256)])
        return context.certificateSHA256
    }

    /// SHA-256 (lowercase hex, of the DER encoding) of the leaf certificate new connections get;
    /// nil without TLS or before `start()`.
    public var tlsCertificateSHA256: String? { core.tlsContext.withLock { $0?.certificateSHA256 } }

    /// Calls `reloadTLS()` whenever the process receives `signal` (SIGHUP by default). Keep the
    /// returned source; cancel it to stop. A failed reload is logged and the old certificate kept.
    public func reloadTLSOnSignal(_ signo: Int32 = SIGHUP) -> any DispatchSourceSignal {
        signal(signo, SIG_IGN)  // the Dispatch source sees it; the default action would end the process
        let source = DispatchSource.makeSignalSource(signal: signo, queue: ControlQueue.shared)
        source.setEventHandler { [self] in
            core.logger.info("signal received, reloading the TLS certificate", metadata: ["signal": "\(signo)"])
            _ = try? reloadTLS()
        }
        source.activate()
        return source
    }
}
