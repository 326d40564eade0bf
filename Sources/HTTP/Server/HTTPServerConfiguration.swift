// HTTPServer.Configuration: every limit and timeout of the server, in one place, with defaults.

extension HTTPServer {
    /// Limits, timeouts and sizes of an `HTTPServer`; every field has a production default.
    public struct Configuration: Sendable {
        /// Address to bind: "0.0.0.0", "::" (dual-stack), "127.0.0.1", "::1", … Default "127.0.0.1".
        public var host: String = "127.0.0.1"
        /// Port to bind; 0 picks a free one (read it back from `HTTPServer.port`). Default 8080.
        public var port: Int = 8080
        /// listen(2) backlog. Default 1024.
        public var backlog: Int32 = 1024

        /// Time allowed from the first byte of a request to the end of its header section (slowloris
        /// defence); answered with 408 and closed. Default 10 s.
        public var headerReadTimeout: Duration = .seconds(10)
        /// Time an idle keep-alive connection is kept open between requests; closed silently. Default 15 s.
        public var idleTimeout: Duration = .seconds(15)
        /// Longest pause while a request body arrives (an inactivity timeout, not a total); 408. Default 30 s.
        public var bodyReadTimeout: Duration = .seconds(30)
        /// Longest time pending response bytes may make no progress before the connection is dropped. Default 30 s.
        public var writeTimeout: Duration = .seconds(30)
        /// Longest time a handler of a buffered-body route may take to return its response; past it
        /// the client gets 503 with a JSON error and the connection is closed, and the handler's late
        /// answer is dropped (its thread runs on to the end). Streamed-body routes are bounded by
        /// `bodyReadTimeout` instead, and a streamed response only by `writeTimeout`. nil: no limit.
        /// Default 120 s.
        public var handlerTimeout: Duration? = .seconds(120)
        /// How long a closing connection drains unread input so its last response is not lost to a RST. Default 2 s.
        public var lingerTimeout: Duration = .seconds(2)

        /// Open connections at most; one more is answered 503 and closed. Default 1024.
        public var maxConnections: Int = 1024
        /// Open connections from one client IP address at most; one more from that address is
        /// answered 503 (`Retry-After: 1`, JSON error) and closed, while other addresses are served.
        /// Keeps one client (slowloris, a leaking pool) from taking every slot of `maxConnections`.
        /// Behind a load balancer every client shares its address: raise it there. Default 128.
        public var maxConnectionsPerAddress: Int = 128
        /// Largest request line plus header section (431 beyond). Default 16 KiB.
        public var maxHeaderBytes: Int = 16 * 1024
        /// Most header fields per request (431 beyond). Default 100.
        public var maxHeaderCount: Int = 100
        /// Largest request body (413 beyond); a route may set its own in `RouteOptions`. Default 64 MiB.
        public var maxBodyBytes: Int = 64 * 1024 * 1024

        /// Threads running handlers; at most this many handlers run at once. Default 16.
        public var handlerThreads: Int = 16
        /// Handlers of `.streaming` routes that may run at once. Each holds a handler thread for as long
        /// as its client takes to send the body, so a few slow uploads could otherwise hold the whole
        /// pool; one more is answered 503 with `Retry-After` (its body unread, the connection closed).
        /// nil (the default): half of `handlerThreads`, at least 1.
        public var maxStreamingHandlers: Int?
        /// Bytes of a streamed request body buffered before the socket is no longer read. Default 1 MiB.
        public var requestStreamBuffer: Int = 1024 * 1024
        /// Bytes of pending response output above which a streaming writer blocks. Default 1 MiB.
        public var responseStreamBuffer: Int = 1024 * 1024
        /// Bytes of pipelined input read ahead while a request is being handled. Default 64 KiB.
        public var maxPipelinedBytes: Int = 64 * 1024

        /// Serve HTTPS with this certificate and key (TLS 1.2 and 1.3 only); nil: plain HTTP.
        /// Every limit and timeout above applies unchanged; the handshake counts against
        /// `headerReadTimeout`. Connections refused by a limit are closed without an answer.
        public var tls: TLSConfiguration?

        /// Where the server counts connections it refuses (`http_connections_rejected_total`); nil: nowhere.
        public var metrics: MetricsRegistry?

        /// Default graceful-shutdown deadline used on SIGTERM/SIGINT by `pfc-server serve`. Default 10 s.
        public var shutdownDeadline: Duration = .seconds(10)

        /// The defaults.
        public init() {}

        /// The defaults with another host and port.
        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }

        var parserLimits: HTTPParserLimits {
            var l = HTTPParserLimits()
            l.maxHeaderBytes = maxHeaderBytes
            l.maxHeaderCount = maxHeaderCount
            l.maxBodyBytes = maxBodyBytes
            return l
        }
    }
}

extension Duration {
    /// Whole nanoseconds (saturating).
    var nanoseconds: UInt64 {
        let c = components
        if c.seconds < 0 { return 0 }
        return UInt64(c.seconds) &* 1_000_000_000 &+ UInt64(c.attoseconds / 1_000_000_000)
    }
}
