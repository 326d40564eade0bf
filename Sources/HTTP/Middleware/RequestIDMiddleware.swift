// RequestIDMiddleware: echoes a sane `X-Request-Id` or generates one, and puts it in the context
// (whose logger then carries it in its metadata) and the response. The server already picks the id the same way for every
// request (so its own answers, parse errors included, carry one); the middleware keeps that id.

import Synchronization

/// Keeps `context.requestID` when the server set it, else takes `X-Request-Id` (when sane) or a
/// fresh random id (`context.logger` carries it in its metadata), and echoes it.
public struct RequestIDMiddleware: Middleware {
    /// Makes the middleware.
    public init() {}

    /// Sets the id, calls `next`, adds the response header.
    public func handle(_ request: Request, context: RequestContext,
                       next: (Request, RequestContext) throws -> Response) throws -> Response {
        var ctx = context
        if ctx.requestID.isEmpty { ctx.requestID = Self.requestID(for: request.headers) }
        var response = try next(request, ctx)
        response.headers.replaceOrAdd(name: "X-Request-Id", value: ctx.requestID)
        return response
    }

    /// The client's `X-Request-Id` when sane, else a fresh one.
    static func requestID(for headers: HTTPHeaders) -> String {
        if let given = headers["X-Request-Id"], isAcceptable(given) { return given }
        return generate()
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

    /// 16 lowercase hex digits, zero-padded.
    private static func hex(_ v: UInt64) -> String {
        String(unsafeUninitializedCapacity: 16) { out in
            let digits = Array("0123456789abcdef".utf8)
            for i in 0..<16 { out[i] = digits[Int((v >> UInt64(60 - 4 * i)) & 0xF)] }
            return 16
        }
    }
}
