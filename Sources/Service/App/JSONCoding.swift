// JSONCoding: decoding request bodies with errors that name the field, and encoding responses.
import Foundation
import HTTP

/// Types whose `CodingKeys` spell their JSON keys (snake_case) by hand, decoded without the key
/// strategy: the JSON stored in the database (job params, progress, results, analysis summaries),
/// whose format must not depend on the encoder that wrote it and which other code decodes with a
/// plain `JSONDecoder`, and the request types of DTO files that have not moved to the strategy yet.
protocol ExplicitJSONKeys {}

/// JSON in and out of handlers. The API's JSON is snake_case and its Swift names camelCase: response
/// types and request bodies leave the mapping to `apiEncoder` / `apiDecoder` instead of CodingKeys
/// that only rename (`datasetID` ↔ `dataset_id`, `topKL` ↔ `top_kl`, `imageShape` ↔ `image_shape`).
enum JSONCoding {
    /// JSON as the Swift names say it (or the type's own CodingKeys): stored JSON such as model
    /// architectures, job params and results.
    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        e.dateEncodingStrategy = .iso8601
        e.nonConformingFloatEncodingStrategy = .throw
        return e
    }()

    /// Responses: camelCase Swift names become snake_case keys (keys already in snake_case, and the
    /// keys of dictionaries, stay as they are).
    static let apiEncoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        e.dateEncodingStrategy = .iso8601
        e.nonConformingFloatEncodingStrategy = .throw
        e.keyEncodingStrategy = .convertToSnakeCase
        return e
    }()

    /// Request bodies: snake_case keys become the Swift names, the inverse of `apiEncoder`'s
    /// `.convertToSnakeCase`. Not `.convertFromSnakeCase`, which turns `dataset_id` into `datasetId`
    /// and so misses `datasetID`: here the initialisms of `initialisms` are upper-cased whole. A key
    /// that is not snake_case (`inputDim`) matches no field, as before the strategy.
    static func apiDecoder(for type: Any.Type) -> JSONDecoder {
        let d = JSONDecoder()
        if !(type is any ExplicitJSONKeys.Type) {
            d.keyDecodingStrategy = .custom { path in APIKey(swiftName(path.last?.stringValue ?? "")) }
        }
        return d
    }

    /// Words spelled in capitals in Swift names (`datasetID`, `targetKL`).
    static let initialisms: Set<Substring> = ["id", "kl"]

    /// `dataset_id` → `datasetID`, `label_loss_weight` → `labelLossWeight`, `name` → `name`.
    static func swiftName(_ key: String) -> String {
        if key.contains(where: \.isUppercase) { return "#" + key }  // no Swift name has a '#'
        let words = key.split(separator: "_", omittingEmptySubsequences: false)
        guard words.count > 1, !words.contains(where: \.isEmpty) else { return key }
        return String(words[0]) + words.dropFirst().map {
            initialisms.contains($0) ? $0.uppercased() : $0.prefix(1).uppercased() + $0.dropFirst()
        }.joined()
    }

    /// The JSON key of a Swift name, as `.convertToSnakeCase` writes it: `datasetID` → `dataset_id`.
    static func snakeCase(_ name: String) -> String {
        var out = ""
        let chars = Array(name)
        for (i, ch) in chars.enumerated() {
            if ch.isUppercase, i > 0 {
                let previousLower = !chars[i - 1].isUppercase && chars[i - 1] != "_"
                let nextLower = i + 1 < chars.count && chars[i + 1].isLowercase
                if previousLower || (chars[i - 1].isUppercase && nextLower) { out.append("_") }
            }
            out.append(contentsOf: ch.lowercased())
        }
        return out
    }

    private struct APIKey: CodingKey {
        let stringValue: String
        var intValue: Int? { nil }
        init(_ s: String) { stringValue = s }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { return nil }
    }

    /// A JSON response of `value`.
    static func response<T: Encodable>(_ value: T, status: HTTPStatus = .ok, headers: [(String, String)] = []) throws -> Response {
        var r = Response.json(Array(try apiEncoder.encode(value)), status: status)
        for (name, v) in headers { r.headers.replaceOrAdd(name: name, value: v) }
        return r
    }

    /// Checks the request declares JSON (415 otherwise).
    static func requireJSON(_ request: Request) throws {
        let type = mediaType(request)
        guard type == "application/json" else { throw APIError.unsupportedMediaType(type, accepted: ["application/json"]) }
    }

    /// The media type of the request, lower-cased, without parameters.
    static func mediaType(_ request: Request) -> String? {
        request.headers["Content-Type"].map {
            $0.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
        }
    }

    /// Decodes a JSON body into `T`: 415 for another content type, 400 for malformed JSON, 422 naming
    /// the field for wrong or missing values.
    static func decode<T: Decodable>(_ type: T.Type, from request: Request, maxBytes: Int = 1 << 20) throws -> T {
        try requireJSON(request)
        let bytes = try request.body.collect(maxBytes: maxBytes)
        return try decode(type, from: Data(bytes))
    }

    /// Decodes `data` into `T` with the same error mapping.
    static func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
        if data.isEmpty { throw APIError.badRequest("the request body is empty; send a JSON object", code: "invalid_json") }
        do { try StrictJSON.check(data) } catch { throw APIError.badRequest("malformed JSON: \(error.message)", code: "invalid_json") }
        do {
            return try apiDecoder(for: T.self).decode(T.self, from: data)
        } catch DecodingError.dataCorrupted(let c) where c.codingPath.isEmpty && data.count <= StrictJSON.defaultMaxSearchBytes
                    && (try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])) != nil {
            // (Only bodies small enough to search: building a 64 MiB body's object tree just to give up
            // would cost gigabytes.)
            // Valid JSON the decoder still calls invalid: a number that does not fit its field.
            let misfit = StrictJSON.numberMisfit(data) { candidate in
                do { _ = try apiDecoder(for: T.self).decode(T.self, from: candidate); return false } catch DecodingError.dataCorrupted(let c) {
                    return c.codingPath.isEmpty
                } catch { return false }
            }
            guard let misfit else {
                throw APIError.invalid("a number does not fit its field (an integer field needs a whole number in range, a "
                    + "32-bit float field a magnitude below 3.4e38)")
            }
            throw APIError.invalid("field '\(misfit.path)': \(misfit.text) does not fit (an integer field needs a whole number "
                + "in range, a 32-bit float field a magnitude below 3.4e38)")
        } catch let error as DecodingError {
            throw describe(error)
        }
    }

    static func describe(_ error: DecodingError) -> HTTPError {
        func path(_ keys: [any CodingKey]) -> String {
            // Field names as the client wrote them: snake_case (keys already snake_case are unchanged).
            keys.map { $0.intValue.map { "[\($0)]" } ?? ".\(snakeCase($0.stringValue))" }.joined().trimmingCharacters(in: CharacterSet(charactersIn: "."))
        }
        switch error {
        case .dataCorrupted(let c) where c.codingPath.isEmpty:
            return APIError.badRequest("malformed JSON: \((c.underlyingError as NSError?)?.localizedDescription ?? c.debugDescription)",
                                       code: "invalid_json")
        case .dataCorrupted(let c):
            return APIError.invalid("field '\(path(c.codingPath))': \(c.debugDescription)")
        case .keyNotFound(let key, let c):
            return APIError.invalid("field '\(path(c.codingPath + [key]))' is required")
        case .typeMismatch(let type, let c):
            return APIError.invalid("field '\(path(c.codingPath))' must be \(describe(type))")
        case .valueNotFound(let type, let c):
            return APIError.invalid("field '\(path(c.codingPath))' must be \(describe(type)), not null")
        @unknown default:
            return APIError.invalid("\(error)")
        }
    }

    static func describe(_ type: Any.Type) -> String {
        switch type {
        case is Int.Type, is Int64.Type, is UInt64.Type, is Int32.Type: return "an integer"
        case is Double.Type, is Float.Type: return "a number"
        case is String.Type: return "a string"
        case is Bool.Type: return "a boolean"
        default:
            let name = "\(type)"
            if name.hasPrefix("Array") { return "an array" }
            if name.hasPrefix("Dictionary") { return "an object" }
            return "a valid \(name)"
        }
    }
}

/// `?limit=&offset=` of list endpoints.
struct Pagination {
    var limit = 50
    var offset = 0

    init(_ request: Request) throws {
        if let l = request.queryValue("limit") {
            guard let v = Int(l), (1...1000).contains(v) else { throw APIError.badRequest("limit must be an integer in 1…1000") }
            limit = v
        }
        if let o = request.queryValue("offset") {
            guard let v = Int(o), v >= 0 else { throw APIError.badRequest("offset must be a non-negative integer") }
            offset = v
        }
    }
}

/// `{"items": [...], "next_offset": n|null}`.
struct ListPage<Item: Encodable>: Encodable {
    var items: [Item]
    var nextOffset: Int?
    /// Written by hand so a last page says `"next_offset": null` (synthesized coding omits nil).
    enum CodingKeys: CodingKey { case items, nextOffset }
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(items, forKey: .items)
        try c.encode(nextOffset, forKey: .nextOffset)
    }
}

// The request types of DTO/JobDTO.swift and DTO/ContinualDTO.swift spell their keys by hand; they
// decode without the strategy until those files follow it (then these lines go).
extension TrainRequest: ExplicitJSONKeys {}
extension TaskRequest: ExplicitJSONKeys {}
extension ForgetRequest: ExplicitJSONKeys {}
extension PredictRequest: ExplicitJSONKeys {}
