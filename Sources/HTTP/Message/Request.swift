// Request: what a handler receives: method, decoded path and query, path parameters, headers, body.

/// A request as handed to a handler.
public struct Request: Sendable {
    /// The parsed head (method, target, version, headers, framing).
    public let head: RequestHead
    /// Values of the route template's `{name}` segments, percent-decoded.
    public var pathParameters: [String: String]
    /// The body: buffered bytes, or a stream for routes registered with `.streaming`.
    public let body: RequestBody

    /// Makes a request (the server does this; tests of handlers may too).
    public init(head: RequestHead, pathParameters: [String: String] = [:], body: RequestBody = .bytes([])) {
        self.head = head
        self.pathParameters = pathParameters
        self.body = body
    }

    /// The method.
    public var method: HTTPMethod { head.method }
    /// The percent-decoded path.
    public var path: String { head.path }
    /// The percent-decoded query items.
    public var query: [QueryItem] { head.query }
    /// The header fields.
    public var headers: HTTPHeaders { head.headers }
    /// The protocol version.
    public var version: HTTPVersion { head.version }

    /// The value of path parameter `name`, nil when the route template has no `{name}`.
    public func parameter(_ name: String) -> String? { pathParameters[name] }

    /// The value of path parameter `name`; throws 404 when the matched route has no `{name}` or
    /// its value is empty, so a handler never traps on a template it was not registered under.
    public func pathParameter(_ name: String) throws -> String {
        guard let value = pathParameters[name], !value.isEmpty else {
            throw HTTPError(.notFound, message: "\(path) has no {\(name)}")
        }
        return value
    }

    /// The first value of query parameter `name`.
    public func queryValue(_ name: String) -> String? { head.query.first { $0.name == name }?.value }
}

/// A request body: fully buffered, or a stream read with blocking `next()`.
public enum RequestBody: Sendable {
    /// The whole body (empty when none was sent).
    case bytes([UInt8])
    /// A body delivered as it arrives, with backpressure.
    case stream(RequestBodyStream)
    /// A body pushed to a consumer the handler starts (routes with `RouteOptions.body == .pushed`).
    case pushed(RequestBodyFeed)

    /// The whole body; reads a stream to its end; throws 413 beyond `maxBytes`.
    public func collect(maxBytes: Int = .max) throws -> [UInt8] {
        switch self {
        case .bytes(let b):
            if b.count > maxBytes { throw HTTPError(.contentTooLarge, message: "body exceeds \(maxBytes) bytes") }
            return b
        case .stream(let s):
            var out: [UInt8] = []
            while let chunk = try s.next() {
                if out.count + chunk.count > maxBytes { throw HTTPError(.contentTooLarge, message: "body exceeds \(maxBytes) bytes") }
                out += chunk
            }
            return out
        case .pushed:
            throw HTTPError(.internalServerError, message: "a pushed request body cannot be collected; start a consumer")
        }
    }
}
