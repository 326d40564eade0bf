// RouteTemplate: a path template such as `/v1/models/{id}/train`, split into literal and parameter segments.

/// A parsed path template; `{name}` segments capture one path segment.
public struct RouteTemplate: Sendable, Hashable, CustomStringConvertible {
    enum Segment: Sendable, Hashable { case literal(String), parameter(String) }

    /// The template as written.
    public let description: String
    let segments: [Segment]

    /// Parses a template; it must start with "/".
    public init(_ template: String) {
        precondition(template.hasPrefix("/"), "route template must start with '/': \(template)")
        description = template
        segments = Self.split(template).map { part in
            if part.hasPrefix("{") && part.hasSuffix("}") && part.count > 2 {
                return .parameter(String(part.dropFirst().dropLast()))
            }
            return .literal(String(part))
        }
    }

    /// Matches decoded path segments; returns the captured parameters.
    func match(_ path: [String]) -> [String: String]? {
        guard path.count == segments.count else { return nil }
        var params: [String: String] = [:]
        for (segment, value) in zip(segments, path) {
            switch segment {
            case .literal(let s): if s != value { return nil }
            case .parameter(let name):
                if value.isEmpty { return nil }
                params[name] = value
            }
        }
        return params
    }

    /// "/a/b/" → ["a", "b", ""]; "/" → [""].
    static func split(_ path: String) -> [Substring] {
        path.dropFirst().split(separator: "/", omittingEmptySubsequences: false)
    }
}
