// HTTPParseError: why the parser rejected a request, with the status the server answers before closing.

/// A framing or syntax error found by the parser; the connection answers `status` and closes.
public struct HTTPParseError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The status to answer with (400, 413, 417, 431, 501 or 505).
    public let status: HTTPStatus
    /// A short human-readable reason.
    public let reason: String
    /// Makes an error.
    public init(_ status: HTTPStatus, _ reason: String) { self.status = status; self.reason = reason }
    /// "400 Bad Request: reason".
    public var description: String { "\(status): \(reason)" }
}
