// HTTPMethod: a request method token (RFC 9110 §9).

/// A request method, e.g. `GET`; any token is accepted, the common ones have constants.
public struct HTTPMethod: Sendable, Hashable, CustomStringConvertible, ExpressibleByStringLiteral {
    /// The method token as sent, case-sensitive.
    public let rawValue: String
    /// Makes a method from its token.
    public init(_ rawValue: String) { self.rawValue = rawValue }
    /// Makes a method from a string literal.
    public init(stringLiteral value: String) { self.rawValue = value }
    /// The method token.
    public var description: String { rawValue }

    /// GET.
    public static let get = HTTPMethod("GET")
    /// HEAD.
    public static let head = HTTPMethod("HEAD")
    /// POST.
    public static let post = HTTPMethod("POST")
    /// PUT.
    public static let put = HTTPMethod("PUT")
    /// PATCH.
    public static let patch = HTTPMethod("PATCH")
    /// DELETE.
    public static let delete = HTTPMethod("DELETE")
    /// OPTIONS.
    public static let options = HTTPMethod("OPTIONS")
}
