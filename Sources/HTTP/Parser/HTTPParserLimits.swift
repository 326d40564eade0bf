// HTTPParserLimits: the size limits the parser enforces on one request.

/// Size limits applied while parsing.
public struct HTTPParserLimits: Sendable {
    /// Largest request line plus header section, in bytes (431 beyond). Default 16 KiB.
    public var maxHeaderBytes: Int = 16 * 1024
    /// Most header fields (431 beyond). Default 100.
    public var maxHeaderCount: Int = 100
    /// Largest body (413 beyond); a route may override it after the head. Default 64 MiB.
    public var maxBodyBytes: Int = 64 * 1024 * 1024
    /// Makes the default limits.
    public init() {}
}
