// HTTPParseError: why the parser rejected a request, with the status the server answers before closing.

/// A framing or syntax error found by the parser; the connection answers `status` and closes.
public struct HTTPParseError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The status to answer with (400, 413, 417, 431, 501 or 505).
    public let status: HTTPStatus
    /// A short human-readable reason.
    public let reason: String
    /// Makes an error.
    public init(_ status: HTTPStatus, _ reason: String) { self.status = status; self.reason = reason }
    /// 413 for a body over `limit` bytes (`declared`: its Content-Length, when known), naming the limit.
    public static func bodyTooLarge(limit: Int, declared: Int? = nil) -> HTTPParseError {
        let size = declared.map { "the body (Content-Length \($0))" } ?? "the body"
        return HTTPParseError(.contentTooLarge, "\(size) is over this route's limit of \(limit) bytes\(Self.binarySize(limit))")
    }

    /// " (16 MiB)" for a whole number of KiB, MiB or GiB, else "".
    static func binarySize(_ bytes: Int) -> String {
        for (shift, unit) in [(30, "GiB"), (20, "MiB"), (10, "KiB")] where bytes >= 1 << shift && bytes % (1 << shift) == 0 {
            return " (\(bytes >> shift) \(unit))"
        }
        return ""
    }

    /// "400 Bad Request: reason".
    public var description: String { "\(status): \(reason)" }
}
