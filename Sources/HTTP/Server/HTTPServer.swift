// HTTPServer: the listening socket, its accept source, the set of open connections, the handler
// pool, and graceful shutdown.

import Dispatch
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// An HTTP/1.1 server on non-blocking POSIX sockets and Dispatch.
///
/// ```swift
/// var router = Router()
/// router.get("/healthz") { _, _ in .json(#"{"status":"ok"}"#) }
/// let server = HTTPServer(configuration: .init(host: "0.0.0.0", port: 8080), router: router)
/// try server.start()
/// server.waitUntilStopped()   // after server.shutdown(deadline:) from a signal handler
/// ```
public final class HTTPServer: Sendable {
    /// The configuration it was made with.
    public let configuration: Configuration
    let core: ServerCore
    private let listener = Mutex<(fd: Int32, source: (any DispatchSourceRead)?, port: Int, suspended: Bool)>((-1, nil, 0, false))
    private let acceptQueue = DispatchQueue(label: "pfc.http.accept")

    /// Makes a server; nothing is bound until `start()`.
    public init(configuration: Configuration = Configuration(), router: Router,
                logger: Logger = Logger(label: "pfc.http")) {
        self.configuration = configuration
        self.core = ServerCore(configuration: configuration, router: router, logger: logger)
    }

    /// Binds, listens and starts accepting; throws `SocketError` when the address is unusable.
    public func start() throws {
        signal(SIGPIPE, SIG_IGN)
        let (fd, port) = try Socket.listen(host: configuration.host, port: configuration.port, backlog: configuration.backlog)
        let source = DispatchSource.makeReadSource(fileDescriptor: fd, queue: acceptQueue)
        source.setEventHandler { [self] in acceptPending(fd) }
        source.setCancelHandler { close(fd) }
        listener.withLock { $0 = (fd, source, port, false) }
        source.activate()
        core.logger.info("listening", metadata: ["host": .string(configuration.host), "port": .stringConvertible(port)])
    }

    /// The bound port (useful with port 0); 0 before `start()`.
    public var port: Int { listener.withLock { $0.port } }

    /// Connections currently open (including ones closing).
    public var openConnectionCount: Int { core.connectionCount }

    /// Stops accepting, closes idle connections, lets in-flight requests finish, and force-closes
    /// whatever is left after `deadline`. Returns at once; see `waitUntilStopped()`.
    public func shutdown(deadline: Duration) {
        let wasListening = listener.withLock { state -> Bool in
            guard let source = state.source else { return false }
            if state.suspended { state.suspended = false; source.resume() }
            source.cancel()
            state.source = nil
            return true
        }
        guard wasListening else { core.beginShutdown(); return }  // never started, or already stopping
        acceptQueue.sync {}  // an accept in progress finishes before connections are told to close
        core.logger.info("shutting down", metadata: ["open-connections": .stringConvertible(core.connectionCount)])
        core.beginShutdown()
        DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(Int(deadline.nanoseconds))) { [core] in
            core.forceClose()
        }
    }

    /// Blocks until `shutdown` has completed (every connection closed).
    public func waitUntilStopped() { _ = core.waitUntilStopped(timeout: nil) }

    /// Blocks until stopped or `timeout` passes; true when stopped.
    @discardableResult
    public func waitUntilStopped(timeout: Duration) -> Bool { core.waitUntilStopped(timeout: timeout) }

    /// Blocks until no handler is queued or running (a handler past its deadline may still be at
    /// work after its connection closed), or `timeout` passes; true when none is. Call it after
    /// `waitUntilStopped()` and before closing what handlers use.
    @discardableResult
    public func waitForHandlers(timeout: Duration) -> Bool { core.pool.waitUntilIdle(timeout: timeout) }

    /// Answers of buffered-body handlers dropped instead of sent: their deadline had passed (or
    /// their connection had closed) by the time they returned.
    public var lateAnswersDropped: Int { core.lateAnswersDropped.load(ordering: .relaxed) }

    private func acceptPending(_ listenFD: Int32) {
        for _ in 0..<256 {
            switch Socket.accept(listenFD) {
            case .connection(let fd, let peer):
                Socket.configureAccepted(fd)
                if !core.admit(fd: fd, peer: peer) { rejectOverLimit(fd) }
            case .wouldBlock:
                return
            case .failed:
                continue
            case .outOfDescriptors:
                // The listener stays readable: pause accepting briefly instead of spinning.
                core.logger.error("accept: out of file descriptors; pausing accepts for 100 ms")
                let paused = listener.withLock { state -> Bool in
                    guard let source = state.source, !state.suspended else { return false }
                    source.suspend()
                    state.suspended = true
                    return true
                }
                if paused {
                    acceptQueue.asyncAfter(deadline: .now() + .milliseconds(100)) { [self] in
                        listener.withLock { state in
                            if state.suspended, let source = state.source { state.suspended = false; source.resume() }
                        }
                    }
                }
                return
            }
        }
    }

    /// Beyond `maxConnections`: a static 503, then close once the client had time to read it.
    private func rejectOverLimit(_ fd: Int32) {
        let body = JSONText.errorBody(code: "unavailable", message: "too many connections")
        var bytes: [UInt8] = []
        ResponseHeadEncoder.encode(status: .serviceUnavailable, headers: ["Content-Type": "application/json", "Retry-After": "1"],
                                   framing: .length(body.count), keepAlive: false, version: .http1_1, into: &bytes)
        bytes += body
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress!, $0.count, Socket.sendFlags) }
        _ = Glibc.shutdown(fd, Int32(SHUT_WR))
        core.rejected.add(1, ordering: .relaxed)
        acceptQueue.asyncAfter(deadline: .now() + .milliseconds(500)) {
            var scratch = [UInt8](repeating: 0, count: 4096)
            while scratch.withUnsafeMutableBytes({ recv(fd, $0.baseAddress!, $0.count, 0) }) > 0 {}
            close(fd)
        }
    }
}

/// What connections share: configuration, router, pool, logger and the registry of open connections.
final class ServerCore: Sendable {
    let configuration: HTTPServer.Configuration
    let router: Router
    let logger: Logger
    let pool: HandlerPool
    /// Serial queues the connection queues target, one per core: connection work drains on a few
    /// threads instead of waking a new one for every event.
    let connectionTargets: [DispatchQueue]
    private let nextTarget = Atomic<Int>(0)
    let rejected = Atomic<Int>(0)
    let lateAnswersDropped = Atomic<Int>(0)
    private let state = Mutex<(connections: [ObjectIdentifier: Connection], shuttingDown: Bool)>(([:], false))
    private let stopLock = ConditionLock()
    private nonisolated(unsafe) var stopped = false  // guarded by stopLock

    init(configuration: HTTPServer.Configuration, router: Router, logger: Logger) {
        self.configuration = configuration
        self.router = router
        self.logger = logger
        self.pool = HandlerPool(threads: configuration.handlerThreads, name: "pfc-http-handler")
        let cores = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        self.connectionTargets = (0..<cores).map { DispatchQueue(label: "pfc.http.loop-\($0)") }
    }

    /// The serial queue the next connection's queue targets (round-robin).
    var connectionTarget: DispatchQueue {
        connectionTargets[nextTarget.add(1, ordering: .relaxed).oldValue % connectionTargets.count]
    }

    var connectionCount: Int { state.withLock { $0.connections.count } }

    /// The handler pool's load, handed to every request's context.
    var status: ServerStatus { ServerStatus(pool: pool, handlerThreads: configuration.handlerThreads) }

    /// Registers and starts a connection; false when over the limit or shutting down.
    func admit(fd: Int32, peer: String) -> Bool {
        let connection = state.withLock { s -> Connection? in
            guard !s.shuttingDown, s.connections.count < configuration.maxConnections else { return nil }
            let c = Connection(fd: fd, peer: peer, core: self)
            s.connections[ObjectIdentifier(c)] = c
            return c
        }
        connection?.start()
        return connection != nil
    }

    func connectionClosed(_ connection: Connection) {
        let done = state.withLock { s -> Bool in
            s.connections[ObjectIdentifier(connection)] = nil
            return s.shuttingDown && s.connections.isEmpty
        }
        if done { markStopped() }
    }

    func beginShutdown() {
        let connections = state.withLock { s -> [Connection] in
            s.shuttingDown = true
            return Array(s.connections.values)
        }
        if connections.isEmpty { markStopped(); return }
        for c in connections { c.queue.async { c.beginShutdown() } }
    }

    func forceClose() {
        let connections = state.withLock { Array($0.connections.values) }
        if !connections.isEmpty { logger.warning("shutdown deadline passed", metadata: ["closing": .stringConvertible(connections.count)]) }
        for c in connections { c.queue.async { c.abort() } }
    }

    private func markStopped() {
        stopLock.withLock { stopped = true; stopLock.broadcast() }
        pool.stop()
        logger.info("stopped")
    }

    func waitUntilStopped(timeout: Duration?) -> Bool {
        stopLock.lock()
        defer { stopLock.unlock() }
        let end = timeout.map { ContinuousClock.now + $0 }
        while !stopped {
            if let end {
                let left = end - ContinuousClock.now
                if left <= .zero { return false }
                stopLock.wait(seconds: Double(left.components.seconds) + Double(left.components.attoseconds) / 1e18)
            } else {
                stopLock.wait()
            }
        }
        return true
    }
}
