// HTTPError: an error a handler or middleware throws to answer with a status and a JSON error body.

/// Thrown by handlers and middleware; becomes `{"error":{"code":…,"message":…}}` with `status`.
public struct HTTPError: Error, Sendable, CustomStringConvertible {
    /// The response status.
    public let status: HTTPStatus
    /// A stable machine-readable code, e.g. "not_found".
    public let code: String
    /// A human-readable message.
    public let message: String
    /// Extra response headers (e.g. `Allow`, `WWW-Authenticate`, `Retry-After`).
    public var headers: HTTPHeaders

    /// Makes an error; `code` defaults to the status's code and `message` to its reason phrase.
    public init(_ status: HTTPStatus, code: String? = nil, message: String? = nil, headers: HTTPHeaders = HTTPHeaders()) {
        self.status = status
        self.code = code ?? status.errorCode
        self.message = message ?? status.reasonPhrase
        self.headers = headers
    }

    /// Same as `init(_:code:message:headers:)`, spelled with labels.
    public init(status: HTTPStatus, code: String, message: String) { self.init(status, code: code, message: message) }

    /// "404 Not Found (not_found): message".
    public var description: String { "\(status) (\(code)): \(message)" }

    /// The JSON error response.
    public var response: Response {
        var r = Response.json(JSONText.errorBody(code: code, message: message), status: status)
        for field in headers { r.headers.add(name: field.name, value: field.value) }
        return r
    }
}
