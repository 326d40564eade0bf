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
        /// Directly on the connection's queue. Only for handlers that never block and finish in
        /// microseconds (health checks); a slow one would stall its connection.
        case connectionQueue
    }

    /// Body mode; default `.buffered`.
    public var body: BodyMode
    /// Body limit for this route, overriding `HTTPServer.Configuration.maxBodyBytes`.
    public var maxBodyBytes: Int?
    /// Execution; default `.handlerPool`.
    public var execution: Execution

    /// Makes options.
    public init(body: BodyMode = .buffered, maxBodyBytes: Int? = nil, execution: Execution = .handlerPool) {
        self.body = body
        self.maxBodyBytes = maxBodyBytes
        self.execution = execution
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
