// Response: status, headers and a body that is either bytes or a streaming writer.

/// A response returned by a handler.
public struct Response: Sendable {
    /// The status.
    public var status: HTTPStatus
    /// The header fields (Content-Length, Transfer-Encoding, Date and Connection are set by the server).
    public var headers: HTTPHeaders
    /// The body.
    public var body: ResponseBody

    /// Makes a response.
    public init(status: HTTPStatus = .ok, headers: HTTPHeaders = HTTPHeaders(), body: ResponseBody = .bytes([])) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A JSON response from encoded bytes.
    public static func json(_ bytes: [UInt8], status: HTTPStatus = .ok) -> Response {
        Response(status: status, headers: ["Content-Type": "application/json"], body: .bytes(bytes))
    }

    /// A JSON response from an encoded string.
    public static func json(_ text: String, status: HTTPStatus = .ok) -> Response { json(Array(text.utf8), status: status) }

    /// A plain-text response.
    public static func text(_ text: String, status: HTTPStatus = .ok) -> Response {
        Response(status: status, headers: ["Content-Type": "text/plain; charset=utf-8"], body: .bytes(Array(text.utf8)))
    }

    /// A streamed response (chunked on HTTP/1.1); `writer` runs on the handler thread.
    public static func stream(status: HTTPStatus = .ok, headers: HTTPHeaders = HTTPHeaders(),
                              _ writer: @escaping @Sendable (ResponseBodyWriter) throws -> Void) -> Response {
        Response(status: status, headers: headers, body: .stream(writer))
    }

    /// A streamed response written later, from any thread, through `stream` (see `PushStream`):
    /// no thread is held while it is open.
    public static func push(_ stream: PushStream, status: HTTPStatus = .ok, headers: HTTPHeaders = HTTPHeaders()) -> Response {
        Response(status: status, headers: headers, body: .push(stream))
    }

    /// A response given later through `deferred.respond(_:)`, from any thread.
    public static func deferred(_ deferred: DeferredResponse) -> Response {
        Response(status: .accepted, body: .deferred(deferred))
    }
}

/// A response body.
public enum ResponseBody: Sendable {
    /// All bytes at once (sent with Content-Length).
    case bytes([UInt8])
    /// Bytes produced by a closure writing to a `ResponseBodyWriter` (sent chunked), with backpressure.
    case stream(@Sendable (ResponseBodyWriter) throws -> Void)
    /// Bytes pushed later from any thread by the stream's producer (sent chunked); the handler
    /// thread is free at once.
    case push(PushStream)
    /// The whole response (status, head, body) comes later through the handle; `status` and
    /// `headers` of the placeholder are not sent.
    case deferred(DeferredResponse)
}
