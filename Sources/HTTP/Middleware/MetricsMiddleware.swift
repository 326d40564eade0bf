// MetricsMiddleware: counts requests and records latency per route template, method and status.

/// Records every request into a `MetricsRegistry` (unmatched routes under the label "unmatched").
public struct MetricsMiddleware: Middleware {
    /// Where observations go.
    public let registry: MetricsRegistry

    /// Makes the middleware.
    public init(registry: MetricsRegistry) { self.registry = registry }

    /// Calls `next` and records the outcome.
    public func handle(_ request: Request, context: RequestContext,
                       next: (Request, RequestContext) throws -> Response) throws -> Response {
        let response = try next(request, context)
        let elapsed = ContinuousClock.now - context.receivedAt
        let c = elapsed.components
        let ns = c.seconds < 0 ? 0 : c.seconds >= 1_000_000_000 ? Int64.max : c.seconds * 1_000_000_000 + c.attoseconds / 1_000_000_000
        registry.observe(method: request.method.rawValue, route: context.route ?? "unmatched",
                         status: response.status.code, nanoseconds: ns)
        return response
    }
}
