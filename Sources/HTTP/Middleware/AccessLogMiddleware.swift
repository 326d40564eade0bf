// AccessLogMiddleware: one swift-log line per request with method, path, status and latency.

import Logging

/// Logs each request at `level` through the context's logger.
public struct AccessLogMiddleware: Middleware {
    /// The level of access lines.
    public let level: Logger.Level

    /// Makes the middleware.
    public init(level: Logger.Level = .info) { self.level = level }

    /// Calls `next` and logs the outcome.
    public func handle(_ request: Request, context: RequestContext,
                       next: (Request, RequestContext) throws -> Response) throws -> Response {
        let response = try next(request, context)
        let elapsed = ContinuousClock.now - context.receivedAt
        let ms = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
        context.logger.log(level: level, "\(request.method) \(request.path) \(response.status.code)", metadata: [
            "route": .string(context.route ?? "-"),
            "remote": .string(context.remoteAddress),
            "ms": .string(String(format3(ms))),
        ])
        return response
    }

    private func format3(_ v: Double) -> String {
        let scaled = (v * 1000).rounded() / 1000
        return "\(scaled)"
    }
}
