// HTTPVersion: the protocol version of a request (only 1.0 and 1.1 are served).

/// An HTTP version; the server speaks 1.0 and 1.1.
public struct HTTPVersion: Sendable, Hashable, CustomStringConvertible {
    /// Major digit.
    public let major: Int
    /// Minor digit.
    public let minor: Int
    /// Makes a version.
    public init(major: Int, minor: Int) { self.major = major; self.minor = minor }
    /// "HTTP/1.1".
    public var description: String { "HTTP/\(major).\(minor)" }
    /// HTTP/1.0.
    public static let http1_0 = HTTPVersion(major: 1, minor: 0)
    /// HTTP/1.1.
    public static let http1_1 = HTTPVersion(major: 1, minor: 1)
}
