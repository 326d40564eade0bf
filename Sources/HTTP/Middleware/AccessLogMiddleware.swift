// AccessLogMiddleware: one line per request (method, path, route, status, bytes, latency, peer,
// request id) into an AccessLogWriter's buffer: formatting and a copy, never a write(2).

import Logging

/// Logs each request to `writer`, in `format`, when the context's logger lets `level` through
/// (so `--log-level warning` silences access lines, as it did when they went through swift-log).
public struct AccessLogMiddleware: Middleware {
    /// Where lines go.
    public let writer: AccessLogWriter
    /// Text (swift-log's layout) or JSON lines.
    public let format: AccessLogFormat
    /// The level of access lines.
    public let level: Logger.Level

    /// Makes the middleware.
    public init(writer: AccessLogWriter, format: AccessLogFormat = .text, level: Logger.Level = .info) {
        self.writer = writer
        self.format = format
        self.level = level
    }

    /// Calls `next` and logs the outcome.
    public func handle(_ request: Request, context: RequestContext,
                       next: (Request, RequestContext) throws -> Response) throws -> Response {
        let response = try next(request, context)
        guard context.baseLogger.logLevel <= level else { return response }
        if case .deferred(let deferred) = response.body {
            // Logged when the answer is given, with its status and the latency to that moment.
            let (id, method, route, path, received, peer, label) = (context.requestID, request.method.rawValue, context.route,
                                                                   request.path, context.receivedAt, context.remoteAddress,
                                                                   context.baseLogger.label)
            deferred.whenAnswered { [writer, format, level] answer in
                writer.append(Self.line(id, method, route, path, answer, received, peer), format: format, label: label, level: level.rawValue)
            }
            return response
        }
        let line = Self.line(context.requestID, request.method.rawValue, context.route, request.path, response,
                             context.receivedAt, context.remoteAddress)
        writer.append(line, format: format, label: context.baseLogger.label, level: level.rawValue)
        return response
    }

    static func line(_ requestID: String, _ method: String, _ route: String?, _ path: String, _ response: Response,
                     _ receivedAt: ContinuousClock.Instant, _ peer: String) -> AccessLogLine {
        let elapsed = (ContinuousClock.now - receivedAt).components
        let bytesOut: Int? = switch response.body {
        case .bytes(let b): b.count
        case .stream, .push, .deferred: nil
        }
        return AccessLogLine(
            requestID: requestID, method: method, route: route, path: path,
            status: response.status.code, bytesOut: bytesOut,
            latencyMicroseconds: elapsed.seconds * 1_000_000 + elapsed.attoseconds / 1_000_000_000_000,
            peer: peer, time: AccessLogLine.now())
    }
}
