// APIError: the service's error vocabulary, mapped onto the HTTP module's JSON errors.
import HTTP
import Storage

/// Errors a resource throws; each becomes `{"error": {"code", "message"}}` with its status.
enum APIError {
    /// 422: the request is well-formed but a value is not acceptable; the message names it.
    static func invalid(_ message: String) -> HTTPError { HTTPError(.unprocessableContent, message: message) }
    /// 400 with a specific code (`invalid_json`, `invalid_csv`, …).
    static func badRequest(_ message: String, code: String = "bad_request") -> HTTPError {
        HTTPError(.badRequest, code: code, message: message)
    }
    /// 404 for a resource that does not exist for this tenant.
    static func notFound(_ what: String) -> HTTPError { HTTPError(.notFound, message: "\(what) not found") }
    /// 409.
    static func conflict(_ message: String) -> HTTPError { HTTPError(.conflict, message: message) }
    /// 415 naming what is accepted.
    static func unsupportedMediaType(_ got: String?, accepted: [String]) -> HTTPError {
        HTTPError(.unsupportedMediaType,
                  message: "content type \(got ?? "(none)") is not accepted; send \(accepted.joined(separator: " or "))")
    }

    /// The `code` of the 503 a transient `StoreError` becomes, and of the 409 of a job cancelled at its commit.
    static let databaseUnavailableCode = "database_unavailable", jobCancelledCode = "job_cancelled"

    /// Maps a storage error to the HTTP error a client should see; unexpected ones become 503/500.
    static func from(_ error: StoreError) -> HTTPError {
        switch error {
        case .notFound(let what): return notFound(what)
        case .conflict(let message, _): return conflict(message)
        case .connectionFailed, .poolExhausted, .timeout, .serializationFailure:
            return HTTPError(.serviceUnavailable, code: databaseUnavailableCode, message: "the database is unavailable; retry later",
                             headers: ["Retry-After": "1"])
        case .jobCancelled(let id): return HTTPError(.conflict, code: jobCancelledCode, message: "job \(id) was cancelled")
        case .invalidArgument(let message): return badRequest(message)
        default: return HTTPError(.internalServerError, message: "internal database error")
        }
    }
}

/// Runs `body`, turning `StoreError`s into HTTP errors.
func storeCall<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch let error as StoreError { throw APIError.from(error) }
}
