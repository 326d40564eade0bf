// AuthMiddleware: an authentication hook that runs before the handler and can reject with 401.

/// Calls `authenticate` for every request not under an exempt path; nil or a thrown error rejects
/// with 401 (`WWW-Authenticate: Bearer`); a principal is stored in `context.principal`.
public struct AuthMiddleware: Middleware {
    /// Returns the principal for a request, or nil when it is not authenticated.
    public typealias Authenticate = @Sendable (Request) throws -> String?

    private let authenticate: Authenticate
    private let exemptPaths: Set<String>

    /// Makes the middleware; requests whose path is in `exemptPaths` pass unauthenticated.
    public init(exemptPaths: Set<String> = [], authenticate: @escaping Authenticate) {
        self.authenticate = authenticate
        self.exemptPaths = exemptPaths
    }

    /// Authenticates, then calls `next`.
    public func handle(_ request: Request, context: RequestContext,
                       next: (Request, RequestContext) throws -> Response) throws -> Response {
        if exemptPaths.contains(request.path) { return try next(request, context) }
        let principal: String?
        do {
            principal = try authenticate(request)
        } catch let error as HTTPError {
            throw error
        } catch {
            principal = nil
        }
        guard let principal else {
            throw HTTPError(.unauthorized, message: "missing or invalid credentials", headers: ["WWW-Authenticate": "Bearer"])
        }
        var ctx = context
        ctx.principal = principal
        return try next(request, ctx)
    }
}
