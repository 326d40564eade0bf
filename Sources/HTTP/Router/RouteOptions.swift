// RouteOptions: per-route body handling (buffered or streamed, body limit) and where the handler runs.

/// Per-route options.
public struct RouteOptions: Sendable {
    /// How the request body reaches the handler.
    public enum BodyMode: Sendable {
        /// Read fully before the handler runs (`Request.body` is `.bytes`).
        case buffered
        /// Handed over as it arrives (`Request.body` is `.stream`), with backpressure.
        case streaming
        /// Pushed to a consumer the handler starts (`Request.body` is `.pushed`) on the connection's
        /// queue, with backpressure: no thread waits for the body (see `RequestBodyConsumer`).
        case pushed
    }

    /// Where the handler runs.
    public enum Execution: Sendable {
        /// On the server's bounded handler-thread pool (default; blocking is fine).
        case handlerPool
        /// Directly on the connection's queue (usually the event loop thread that read the request).
        /// Only for handlers that never wait for other work and finish in microseconds (health
        /// checks, embedded-store reads on the loop's own connection); a slow one stalls every
        /// connection of its loop.
        case connectionQueue
    }

    /// Body mode; default `.buffered`.
    public var body: BodyMode
    /// Body limit for this route, overriding `Router.defaultMaxBodyBytes` and `HTTPServer.Configuration.maxBodyBytes`.
    public var maxBodyBytes: Int?
    /// Body limits by media type (lowercase, no parameters: "application/json"), for a route whose
    /// limit depends on the body's `Content-Type`; other types get `maxBodyBytes`.
    public var maxBodyBytesByContentType: [String: Int] = [:]
    /// Execution; default `.handlerPool`.
    public var execution: Execution

    /// Makes options.
    public init(body: BodyMode = .buffered, maxBodyBytes: Int? = nil, execution: Execution = .handlerPool) {
        self.body = body
        self.maxBodyBytes = maxBodyBytes
        self.execution = execution
    }

    /// The limit for a request with these headers (nil: the router's or server's default).
    func bodyLimit(for headers: HTTPHeaders) -> Int? {
        if !maxBodyBytesByContentType.isEmpty, let type = headers["Content-Type"] {
            let media = type.split(separator: ";", maxSplits: 1).first.map { $0.trimmingASCIIWhitespace().lowercasedASCII() } ?? ""
            if let limit = maxBodyBytesByContentType[media] { return limit }
        }
        return maxBodyBytes
    }

    /// Buffered body, default limit, handler pool.
    public static let `default` = RouteOptions()

    /// A streamed request body with its own limit.
    public static func streaming(maxBodyBytes: Int? = nil) -> RouteOptions {
        RouteOptions(body: .streaming, maxBodyBytes: maxBodyBytes)
    }

    /// A request body pushed to a consumer, with its own limit.
    public static func pushed(maxBodyBytes: Int? = nil) -> RouteOptions {
        RouteOptions(body: .pushed, maxBodyBytes: maxBodyBytes)
    }
}
