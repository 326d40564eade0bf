// `pfc-server serve`: starts the HTTP server (issue 3) with /healthz and, behind --echo, /echo;
// SIGTERM and SIGINT shut it down gracefully and the process exits 0.

import ArgumentParser
import Dispatch
import HTTP
import Logging
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `pfc-server serve`: starts the HTTP server.
struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "serve", abstract: "Start the HTTP server.")

    @Option(help: "Address to bind (0.0.0.0, ::, 127.0.0.1, …).")
    var host: String = "127.0.0.1"

    @Option(help: "Port to bind (0 picks a free one).")
    var port: Int = 8080

    @Flag(help: "Serve POST /echo, which answers a JSON body with itself (for benchmarks).")
    var echo = false

    @Option(help: "Handler threads.")
    var handlerThreads: Int = 16

    @Option(help: "Maximum open connections (beyond: 503).")
    var maxConnections: Int = 1024

    @Option(help: "Graceful-shutdown deadline in seconds.")
    var shutdownSeconds: Int = 10

    @Flag(inversion: .prefixedNo, help: "Log one line per request.")
    var accessLog = true

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    func run() throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "pfc.serve")

        var config = HTTPServer.Configuration(host: host, port: port)
        config.handlerThreads = handlerThreads
        config.maxConnections = maxConnections
        config.shutdownDeadline = .seconds(shutdownSeconds)

        let server = HTTPServer(configuration: config, router: makeRouter(), logger: Logger(label: "pfc.http"))
        try server.start()
        logger.info("serving", metadata: ["url": "http://\(host):\(server.port)", "echo": "\(echo)"])

        let signals = [SIGTERM, SIGINT].map { signo -> any DispatchSourceSignal in
            signal(signo, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signo, queue: .global())
            source.setEventHandler {
                logger.info("signal received, shutting down", metadata: ["signal": "\(signo)"])
                server.shutdown(deadline: config.shutdownDeadline)
            }
            source.activate()
            return source
        }
        server.waitUntilStopped()
        signals.forEach { $0.cancel() }
    }

    private func makeRouter() -> Router {
        var router = Router()
        router.use(RequestIDMiddleware())
        if accessLog { router.use(AccessLogMiddleware()) }
        let health: [UInt8] = Array(#"{"status":"ok"}"#.utf8)
        // Health checks run on the connection queue: they never block, and must answer even when
        // every handler thread is busy with slow requests.
        router.get("/healthz", options: RouteOptions(execution: .connectionQueue)) { _, _ in .json(health) }
        if echo {
            router.post("/echo", options: RouteOptions(maxBodyBytes: 1 << 20)) { request, _ in
                guard request.headers["Content-Type"]?.lowercased().hasPrefix("application/json") ?? false else {
                    throw HTTPError(.unsupportedMediaType, message: "Content-Type must be application/json")
                }
                return .json(try request.body.collect())
            }
        }
        return router
    }
}
