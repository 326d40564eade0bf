// RequestHead: the parsed request line and header section, before any body bytes.

/// How the request body is delimited on the wire.
public enum BodyFraming: Sendable, Equatable {
    /// No body (no Content-Length, no Transfer-Encoding).
    case none
    /// Exactly this many bytes (Content-Length).
    case length(Int)
    /// Chunked transfer coding.
    case chunked
}

/// The request line and header fields of one request, validated and decoded.
public struct RequestHead: Sendable {
    /// The method token.
    public var method: HTTPMethod
    /// The request target as sent.
    public var target: String
    /// The path as sent (still percent-encoded), used for routing segment by segment.
    public var rawPath: String
    /// The percent-decoded path.
    public var path: String
    /// The percent-decoded query items, in order.
    public var query: [QueryItem]
    /// The protocol version (1.0 or 1.1).
    public var version: HTTPVersion
    /// The header fields.
    public var headers: HTTPHeaders
    /// How the body is delimited.
    public var framing: BodyFraming
    /// True when the connection may stay open after this request (RFC 9112 §9.3).
    public var keepAlive: Bool
    /// True when the client sent `Expect: 100-continue` and waits for it before the body.
    public var expectContinue: Bool
}
