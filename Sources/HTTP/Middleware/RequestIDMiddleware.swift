// RequestIDMiddleware: echoes a sane `X-Request-Id` or generates one, and puts it in the context,
// the logger's metadata and the response.

import Synchronization

/// Sets `context.requestID` from `X-Request-Id` (when sane) or a fresh random id, and echoes it.
public struct RequestIDMiddleware: Middleware {
    /// Makes the middleware.
    public init() {}

    /// Sets the id, calls `next`, adds the response header.
    public func handle(_ request: Request, context: RequestContext,
                       next: (Request, RequestContext) throws -> Response) throws -> Response {
        var ctx = context
        if let given = request.headers["X-Request-Id"], Self.isAcceptable(given) {
            ctx.requestID = given
        } else {
            ctx.requestID = Self.generate()
        }
        ctx.logger[metadataKey: "request-id"] = .string(ctx.requestID)
        var response = try next(request, ctx)
        response.headers.replaceOrAdd(name: "X-Request-Id", value: ctx.requestID)
        return response
    }

    /// Up to 128 visible ASCII characters.
    static func isAcceptable(_ id: String) -> Bool {
        !id.isEmpty && id.utf8.count <= 128 && id.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }
    }

    /// 32 hex digits: a random per-process prefix and a counter (unique, and no syscall per request).
    static func generate() -> String {
        prefix + hex(counter.add(1, ordering: .relaxed).newValue)
    }

    private static let prefix: String = {
        var rng = SystemRandomNumberGenerator()
        return hex(rng.next())
    }()

    private static let counter = Atomic<UInt64>(0)

    private static func hex(_ v: UInt64) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }
}
