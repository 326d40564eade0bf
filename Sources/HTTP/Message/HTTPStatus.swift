// HTTPStatus: a response status code with its reason phrase and the error code used in JSON errors.

/// A response status, e.g. `.ok` (200).
public struct HTTPStatus: Sendable, Hashable, CustomStringConvertible {
    /// The three-digit status code.
    public let code: Int
    /// Makes a status from its code.
    public init(_ code: Int) { self.code = code }
    /// "200 OK".
    public var description: String { "\(code) \(reasonPhrase)" }

    /// The standard reason phrase, or "Unknown".
    public var reasonPhrase: String { Self.phrases[code]?.0 ?? "Unknown" }

    /// The snake_case error code used in JSON error bodies, e.g. "not_found".
    public var errorCode: String { Self.phrases[code]?.1 ?? (code >= 500 ? "internal_error" : "error") }

    /// True for statuses that never carry a body (1xx, 204, 304).
    public var forbidsBody: Bool { code < 200 || code == 204 || code == 304 }

    private static let phrases: [Int: (String, String)] = [
        100: ("Continue", "continue"), 200: ("OK", "ok"), 201: ("Created", "created"),
        202: ("Accepted", "accepted"), 204: ("No Content", "no_content"),
        304: ("Not Modified", "not_modified"),
        400: ("Bad Request", "bad_request"), 401: ("Unauthorized", "unauthorized"),
        403: ("Forbidden", "forbidden"), 404: ("Not Found", "not_found"),
        405: ("Method Not Allowed", "method_not_allowed"), 408: ("Request Timeout", "request_timeout"),
        409: ("Conflict", "conflict"), 411: ("Length Required", "length_required"),
        413: ("Content Too Large", "payload_too_large"), 415: ("Unsupported Media Type", "unsupported_media_type"),
        417: ("Expectation Failed", "expectation_failed"), 422: ("Unprocessable Content", "unprocessable_entity"),
        429: ("Too Many Requests", "too_many_requests"),
        431: ("Request Header Fields Too Large", "header_fields_too_large"),
        500: ("Internal Server Error", "internal_error"), 501: ("Not Implemented", "not_implemented"),
        503: ("Service Unavailable", "unavailable"), 505: ("HTTP Version Not Supported", "http_version_not_supported"),
    ]

    /// 200 OK.
    public static let ok = HTTPStatus(200)
    /// 201 Created.
    public static let created = HTTPStatus(201)
    /// 202 Accepted.
    public static let accepted = HTTPStatus(202)
    /// 204 No Content.
    public static let noContent = HTTPStatus(204)
    /// 400 Bad Request.
    public static let badRequest = HTTPStatus(400)
    /// 401 Unauthorized.
    public static let unauthorized = HTTPStatus(401)
    /// 403 Forbidden.
    public static let forbidden = HTTPStatus(403)
    /// 404 Not Found.
    public static let notFound = HTTPStatus(404)
    /// 405 Method Not Allowed.
    public static let methodNotAllowed = HTTPStatus(405)
    /// 408 Request Timeout.
    public static let requestTimeout = HTTPStatus(408)
    /// 409 Conflict.
    public static let conflict = HTTPStatus(409)
    /// 413 Content Too Large.
    public static let contentTooLarge = HTTPStatus(413)
    /// 415 Unsupported Media Type.
    public static let unsupportedMediaType = HTTPStatus(415)
    /// 417 Expectation Failed.
    public static let expectationFailed = HTTPStatus(417)
    /// 422 Unprocessable Content.
    public static let unprocessableContent = HTTPStatus(422)
    /// 429 Too Many Requests.
    public static let tooManyRequests = HTTPStatus(429)
    /// 431 Request Header Fields Too Large.
    public static let headerFieldsTooLarge = HTTPStatus(431)
    /// 500 Internal Server Error.
    public static let internalServerError = HTTPStatus(500)
    /// 501 Not Implemented.
    public static let notImplemented = HTTPStatus(501)
    /// 503 Service Unavailable.
    public static let serviceUnavailable = HTTPStatus(503)
    /// 505 HTTP Version Not Supported.
    public static let httpVersionNotSupported = HTTPStatus(505)
}
