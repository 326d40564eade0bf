// QueryItem: one percent-decoded `name=value` pair of a request's query string.

/// One decoded query parameter; `value` is "" for a bare `name`.
public struct QueryItem: Sendable, Equatable {
    /// The decoded name.
    public let name: String
    /// The decoded value ("" when absent).
    public let value: String
    /// Makes a query item.
    public init(name: String, value: String) { self.name = name; self.value = value }
}
