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
        let (method, route, received) = (request.method.rawValue, context.route ?? "unmatched", context.receivedAt)
        if case .deferred(let deferred) = response.body {
            // Counted when the answer is given: its status, and the latency to that moment.
            deferred.whenAnswered { [registry] answer in
                registry.observe(method: method, route: route, status: answer.status.code, nanoseconds: Self.nanoseconds(since: received))
            }
            return response
        }
        registry.observe(method: method, route: route, status: response.status.code, nanoseconds: Self.nanoseconds(since: received))
        return response
    }

    static func nanoseconds(since start: ContinuousClock.Instant) -> Int64 {
        let c = (ContinuousClock.now - start).components
        return c.seconds < 0 ? 0 : c.seconds >= 1_000_000_000 ? Int64.max : c.seconds * 1_000_000_000 + c.attoseconds / 1_000_000_000
    }
}
