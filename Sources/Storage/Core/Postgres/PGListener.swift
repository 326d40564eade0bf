// PGListener: one dedicated libpq connection that LISTENs on a channel, on a thread of its own:
// poll() on PQsocket, then PQconsumeInput and PQnotifies. A lost connection (server restart,
// network) is re-made with backoff; after every (re)connect `onConnected` runs, so its owner can
// re-read whatever it may have missed while deaf. Silence is checked with a `SELECT 1` every
// `probeInterval`, so a half-open socket is noticed too.
import CLibPQ
import Foundation
import Logging
import Synchronization

/// Receives NOTIFY payloads of one channel over a dedicated connection.
public final class PGListener: Sendable {
    private let url: String
    private let channel: String
    private let logger: Logger
    private let onNotification: @Sendable (String) -> Void
    private let onConnected: @Sendable (_ reconnect: Bool) -> Void
    private let probeInterval: Double
    private let state = Mutex<(stopping: Bool, started: Bool, listening: Bool, connects: Int)>((false, false, false, 0))
    private let finished = Atomic<Bool>(false)

    /// `onNotification` gets each payload, `onConnected` runs after each successful LISTEN
    /// (`reconnect` false the first time). Both run on the listener's thread: keep them short.
    public init(url: String, channel: String = JobChangeFeed.channel, probeInterval: Double = 5,
                logger: Logger = Logger(label: "pfc.storage.listen"),
                onNotification: @escaping @Sendable (String) -> Void,
                onConnected: @escaping @Sendable (_ reconnect: Bool) -> Void = { _ in }) {
        self.url = url
        self.channel = channel
        self.logger = logger
        self.probeInterval = probeInterval
        self.onNotification = onNotification
        self.onConnected = onConnected
    }

    /// Starts the thread (once).
    public func start() {
        let go = state.withLock { s -> Bool in
            if s.started { return false }
            s.started = true
            return true
        }
        guard go else { return }
        let thread = Thread { [self] in
            run()
            finished.store(true, ordering: .releasing)
        }
        thread.name = "pfc-pg-listen"
        thread.stackSize = 1 << 20
        thread.start()
    }

    /// Stops listening; returns once the thread closed its connection (or after `timeout`).
    public func stop(timeout: Double = 3) {
        let started = state.withLock { s -> Bool in s.stopping = true; return s.started }
        guard started else { return }
        let end = Date().addingTimeInterval(timeout)
        while !finished.load(ordering: .acquiring) && Date() < end { usleep(10_000) }
    }

    /// True while a LISTEN connection is up.
    public var isListening: Bool { state.withLock { $0.listening } }

    /// Successful LISTENs so far (1 + reconnects).
    public var connectCount: Int { state.withLock { $0.connects } }

    private var stopping: Bool { state.withLock { $0.stopping } }

    private func run() {
        var backoff = 0.1
        var everConnected = false
        while !stopping {
            guard let conn = connect() else {
                sleepUnlessStopping(backoff)
                backoff = min(backoff * 2, 2)
                continue
            }
            backoff = 0.1
            state.withLock { $0.listening = true; $0.connects += 1 }
            if everConnected { logger.info("LISTEN connection re-established", metadata: ["channel": "\(channel)"]) }
            onConnected(everConnected)
            everConnected = true
            listen(on: conn)
            state.withLock { $0.listening = false }
            PQfinish(conn)
            if !stopping { logger.warning("LISTEN connection lost; reconnecting", metadata: ["channel": "\(channel)"]) }
        }
    }

    private func connect() -> OpaquePointer? {
        let keywords = ["dbname", "connect_timeout", "application_name"]
        let values = [url, "5", "pfc-server-listen"]
        let kc = keywords.map { strdup($0) }, vc = values.map { strdup($0) }
        defer { kc.forEach { free($0) }; vc.forEach { free($0) } }
        let k = kc.map { UnsafePointer($0) } + [nil], v = vc.map { UnsafePointer($0) } + [nil]
        guard let conn = PQconnectdbParams(k, v, 1) else { return nil }
        guard PQstatus(conn) == CONNECTION_OK, exec(conn, "LISTEN \(channel)") else {
            logger.debug("LISTEN connect failed", metadata: ["error": "\(String(cString: PQerrorMessage(conn)))"])
            PQfinish(conn)
            return nil
        }
        return conn
    }

    private func exec(_ conn: OpaquePointer, _ sql: String) -> Bool {
        guard let result = PQexec(conn, sql) else { return false }
        defer { PQclear(result) }
        return PQresultStatus(result) == PGRES_COMMAND_OK || PQresultStatus(result) == PGRES_TUPLES_OK
    }

    /// Delivers notifications until the connection breaks or `stop()`.
    private func listen(on conn: OpaquePointer) {
        var lastTraffic = Date()
        while !stopping {
            if !drain(conn) { return }  // also whatever came with the LISTEN / probe results
            let fd = PQsocket(conn)
            guard fd >= 0 else { return }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let n = poll(&pfd, 1, 250)
            if n < 0 {
                if errno == EINTR { continue }
                return
            }
            if n > 0 {
                if pfd.revents & Int16(POLLERR | POLLHUP | POLLNVAL) != 0 && pfd.revents & Int16(POLLIN) == 0 { return }
                guard PQconsumeInput(conn) == 1 else { return }
                lastTraffic = Date()
            } else if Date().timeIntervalSince(lastTraffic) > probeInterval {
                guard exec(conn, "SELECT 1"), PQstatus(conn) == CONNECTION_OK else { return }
                lastTraffic = Date()
            }
        }
    }

    /// Hands every queued notification to `onNotification`; false when the connection is bad.
    private func drain(_ conn: OpaquePointer) -> Bool {
        while let note = PQnotifies(conn) {
            let payload = note.pointee.extra.map { String(cString: $0) } ?? ""
            PQfreemem(note)
            onNotification(payload)
        }
        return PQstatus(conn) == CONNECTION_OK
    }

    private func sleepUnlessStopping(_ seconds: Double) {
        let end = Date().addingTimeInterval(seconds)
        while !stopping && Date() < end { usleep(50_000) }
    }
}
