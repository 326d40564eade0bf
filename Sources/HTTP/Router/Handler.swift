// Handler: the synchronous, blocking-friendly function a route runs on a handler-pool thread.

/// A request handler. It runs on one of the server's handler threads (never on a connection queue
/// nor on Swift's cooperative pool), so it may block on I/O, locks or long computations.
public typealias Handler = @Sendable (Request, RequestContext) throws -> Response
