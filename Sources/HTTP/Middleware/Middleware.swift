// Middleware: code that runs around every handler (matched routes and 404/405 alike).

/// Wraps request handling; call `next` to continue the chain, or return/throw to short-circuit.
/// Errors thrown here or inside `next` become JSON error responses before reaching outer middleware.
public protocol Middleware: Sendable {
    /// Handles `request`, usually by calling `next` and adjusting the response.
    func handle(_ request: Request, context: RequestContext,
                next: (Request, RequestContext) throws -> Response) throws -> Response
}
