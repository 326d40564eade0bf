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

    /// Binds, listens and starts accepting; throws `SocketError` when the address is unusable and
    /// `TLSError` when `configuration.tls` names files OpenSSL cannot use.
    public func start() throws {
        signal(SIGPIPE, SIG_IGN)  // OpenSSL writes with write(2), which would raise it
        if let tls = configuration.tls { core.installTLS(try TLSContext(tls)) }
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
        // Not on a global queue: whatever else fills the global pool, the deadline must fire.
        ControlQueue.shared.asyncAfter(deadline: .now() + .nanoseconds(Int(deadline.nanoseconds))) { [core] in
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

    /// Connections refused because `maxConnections` were open (answered 503, or closed on TLS).
    public var rejectedConnections: Int { core.rejected.load(ordering: .relaxed) }

    /// Connections refused because their address had `maxConnectionsPerAddress` open.
    public var rejectedConnectionsPerAddress: Int { core.rejectedPerAddress.load(ordering: .relaxed) }

    /// Answers of buffered-body handlers dropped instead of sent: their deadline had passed (or
    /// their connection had closed) by the time they returned.
    public var lateAnswersDropped: Int { core.lateAnswersDropped.load(ordering: .relaxed) }

    private func acceptPending(_ listenFD: Int32) {
        for _ in 0..<256 {
            switch Socket.accept(listenFD) {
            case .connection(let fd, let peer, let address):
                Socket.configureAccepted(fd)
                switch core.admit(fd: fd, peer: peer, address: address) {
                case .admitted: break
                case .refused(let reason): reject(fd, reason: reason)
                }
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

    /// Beyond a connection limit: a static 503 (plain HTTP), then close once the client had time
    /// to read it. A TLS listener closes at once: an answer would need a handshake first.
    private func reject(_ fd: Int32, reason: ServerCore.Refusal) {
        core.countRejection(reason)
        if configuration.tls != nil || reason == .tlsSession {
            close(fd)
            return
        }
        let message = reason == .perAddress ? "too many connections from this address" : "too many connections"
        let body = JSONText.errorBody(code: "unavailable", message: message)
        var bytes: [UInt8] = []
        let headers: HTTPHeaders = ["Content-Type": "application/json", "Retry-After": "1",
                                    "X-Request-Id": RequestIDMiddleware.generate()]
        ResponseHeadEncoder.encode(status: .serviceUnavailable, headers: headers,
                                   framing: .length(body.count), keepAlive: false, version: .http1_1, into: &bytes)
        bytes += body
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress!, $0.count, Socket.sendFlags) }
        _ = Glibc.shutdown(fd, Int32(SHUT_WR))
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
    /// Connections refused over `maxConnections` (or for want of a TLS session).
    let rejected = Atomic<Int>(0)
    /// Connections refused over `maxConnectionsPerAddress`.
    let rejectedPerAddress = Atomic<Int>(0)
    let lateAnswersDropped = Atomic<Int>(0)
    /// Handlers of streaming-body routes running now, held to `streamingHandlerLimit`.
    let streamingHandlers = Atomic<Int>(0)
    var streamingHandlerLimit: Int { max(1, configuration.maxStreamingHandlers ?? configuration.handlerThreads / 2) }
    /// The TLS context new connections get (nil: plain HTTP); swapped whole by a reload.
    let tlsContext = Mutex<TLSContext?>(nil)
    private let state = Mutex<State>(State())

    struct State {
        var connections: [ObjectIdentifier: Connection] = [:]
        /// Open connections per peer IP address; addresses with none are absent.
        var perAddress: [String: Int] = [:]
        var shuttingDown = false
    }

    /// Why a connection was not admitted.
    enum Refusal { case total, perAddress, shuttingDown, tlsSession }
    enum Admission { case admitted, refused(Refusal) }
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

    /// Registers and starts a connection, or says which limit refused it.
    func admit(fd: Int32, peer: String, address: String) -> Admission {
        let refusal = state.withLock { s -> Refusal? in
            if s.shuttingDown { return .shuttingDown }
            if s.connections.count >= configuration.maxConnections { return .total }
            if s.perAddress[address, default: 0] >= configuration.maxConnectionsPerAddress { return .perAddress }
            return nil
        }
        if let refusal { return .refused(refusal) }
        let transport: Transport
        if let context = tlsContext.withLock({ $0 }) {
            guard let session = context.makeSession(fd: fd) else { return .refused(.tlsSession) }
            transport = .tls(fd: fd, session: session)
        } else {
            transport = .plain(fd: fd)
        }
        let c = Connection(fd: fd, peer: peer, address: address, transport: transport, core: self)
        // Only the accept queue admits, so the limits checked above still hold here.
        let registered = state.withLock { s -> Bool in
            guard !s.shuttingDown else { return false }
            s.connections[ObjectIdentifier(c)] = c
            s.perAddress[address, default: 0] += 1
            return true
        }
        guard registered else { transport.release(); return .refused(.shuttingDown) }
        c.start()
        return .admitted
    }

    func connectionClosed(_ connection: Connection) {
        let done = state.withLock { s -> Bool in
            guard s.connections.removeValue(forKey: ObjectIdentifier(connection)) != nil else { return false }
            let left = s.perAddress[connection.address, default: 1] - 1
            s.perAddress[connection.address] = left > 0 ? left : nil
            return s.shuttingDown && s.connections.isEmpty
        }
        if done { markStopped() }
    }

    /// Open connections from one peer address.
    func connectionCount(from address: String) -> Int { state.withLock { $0.perAddress[address] ?? 0 } }

    func countRejection(_ reason: Refusal) {
        switch reason {
        case .perAddress:
            rejectedPerAddress.add(1, ordering: .relaxed)
            configuration.metrics?.countRejectedConnection(reason: "max_connections_per_address")
        case .total, .shuttingDown:
            rejected.add(1, ordering: .relaxed)
            configuration.metrics?.countRejectedConnection(reason: "max_connections")
        case .tlsSession:
            rejected.add(1, ordering: .relaxed)
            configuration.metrics?.countRejectedConnection(reason: "tls_session")
        }
    }

    /// Makes `context` the one new connections get; open connections keep theirs.
    func installTLS(_ context: TLSContext) {
        tlsContext.withLock { $0 = context }
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
