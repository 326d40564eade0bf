// ServerStatus: what a handler can learn of the server running it (for health checks).

/// The handler pool's load, as seen by the request being handled (`RequestContext.server`).
public struct ServerStatus: Sendable {
    let pool: HandlerPool
    /// Threads running handlers.
    public let handlerThreads: Int
    /// How long the oldest request waiting for a handler thread has waited (zero when none waits).
    public var handlerQueueDelay: Duration { pool.queueDelay }
    /// Handler work items queued or running.
    public var handlersOutstanding: Int { pool.outstandingCount }
}
