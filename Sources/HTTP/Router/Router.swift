// Router: method + path-template routing with 404, 405 (+ Allow) and HEAD answered by GET routes,
// and the middleware list that wraps every request (matched or not).

/// Routes and middleware; build it, then hand it to `HTTPServer`.
public struct Router: Sendable {
    struct Route: Sendable {
        let method: HTTPMethod
        let template: RouteTemplate
        let options: RouteOptions
        let handler: Handler
    }

    /// What routing decided for one request.
    struct Resolution: Sendable {
        let template: String?
        let parameters: [String: String]
        let options: RouteOptions
        let handler: Handler
    }

    private(set) var routes: [Route] = []
    private(set) var middleware: [any Middleware] = []
    /// The body limit of routes whose `RouteOptions` set none, and of unmatched requests, when lower
    /// than the server's `maxBodyBytes` (nil: that). Checked against Content-Length on the head,
    /// before any body byte is read.
    public var defaultMaxBodyBytes: Int?

    /// An empty router.
    public init() {}

    /// Adds middleware; the first added is the outermost.
    public mutating func use(_ middleware: any Middleware) { self.middleware.append(middleware) }

    /// Registers `handler` for `method` on `path` (a template with `{param}` segments).
    public mutating func on(_ method: HTTPMethod, _ path: String, options: RouteOptions = .default, _ handler: @escaping Handler) {
        routes.append(Route(method: method, template: RouteTemplate(path), options: options, handler: handler))
    }

    /// Registers a GET route (also answers HEAD).
    public mutating func get(_ path: String, options: RouteOptions = .default, _ handler: @escaping Handler) {
        on(.get, path, options: options, handler)
    }

    /// Registers a POST route.
    public mutating func post(_ path: String, options: RouteOptions = .default, _ handler: @escaping Handler) {
        on(.post, path, options: options, handler)
    }

    /// Registers a PUT route.
    public mutating func put(_ path: String, options: RouteOptions = .default, _ handler: @escaping Handler) {
        on(.put, path, options: options, handler)
    }

    /// Registers a PATCH route.
    public mutating func patch(_ path: String, options: RouteOptions = .default, _ handler: @escaping Handler) {
        on(.patch, path, options: options, handler)
    }

    /// Registers a DELETE route.
    public mutating func delete(_ path: String, options: RouteOptions = .default, _ handler: @escaping Handler) {
        on(.delete, path, options: options, handler)
    }

    /// Finds the route for a request; unmatched requests get a handler that throws 404 or 405.
    func resolve(method: HTTPMethod, rawPath: String) -> Resolution {
        let segments = RouteTemplate.split(rawPath).map { PercentDecoding.decode($0.utf8) ?? String($0) }
        var allowed: [HTTPMethod] = []
        var headFallback: Resolution?
        for route in routes {
            guard let params = route.template.match(segments) else { continue }
            if route.method == method {
                return Resolution(template: route.template.description, parameters: params, options: route.options, handler: route.handler)
            }
            if method == .head && route.method == .get && headFallback == nil {
                headFallback = Resolution(template: route.template.description, parameters: params, options: route.options, handler: route.handler)
            }
            allowed.append(route.method)
        }
        if let headFallback { return headFallback }
        if allowed.isEmpty {
            return Resolution(template: nil, parameters: [:], options: .default) { request, _ in
                throw HTTPError(.notFound, message: "no route for \(request.method) \(request.path)")
            }
        }
        if allowed.contains(.get) && !allowed.contains(.head) { allowed.append(.head) }
        var seen = Set<HTTPMethod>()
        let allow = allowed.filter { seen.insert($0).inserted }.map(\.rawValue).joined(separator: ", ")
        return Resolution(template: nil, parameters: [:], options: .default) { request, _ in
            throw HTTPError(.methodNotAllowed, message: "\(request.method) is not allowed on \(request.path)", headers: ["Allow": allow])
        }
    }

    /// Runs the middleware chain around `resolution.handler`; never throws (errors become responses).
    /// The chain is walked by index with non-escaping `next` closures: nothing is allocated for it per request.
    func respond(to request: Request, context: RequestContext, resolution: Resolution) -> Response {
        run(0, request, context, resolution.handler)
    }

    private func run(_ index: Int, _ request: Request, _ context: RequestContext, _ handler: Handler) -> Response {
        guard index < middleware.count else {
            return ErrorResponse.catching(context) { try handler(request, context) }
        }
        return ErrorResponse.catching(context) {
            try middleware[index].handle(request, context: context) { r, c in run(index + 1, r, c, handler) }
        }
    }
}

/// Turns thrown errors into JSON error responses.
enum ErrorResponse {
    static func catching(_ context: RequestContext, _ body: () throws -> Response) -> Response {
        do {
            return try body()
        } catch let error as HTTPError {
            return error.response
        } catch let error as HTTPParseError {
            return HTTPError(error.status, message: error.reason).response
        } catch is ResponseBodyWriter.ClientDisconnected {
            return HTTPError(.badRequest, code: "client_disconnected", message: "client went away").response
        } catch {
            context.logger.error("handler failed", metadata: ["error": "\(error)"])
            return HTTPError(.internalServerError, message: "internal error").response
        }
    }
}
