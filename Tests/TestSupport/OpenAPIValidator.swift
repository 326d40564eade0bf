// OpenAPIValidator: checks real responses against openapi.yaml. It finds the path template and
// operation, the documented response for the status, the content type, the required headers (when
// given), and validates JSON bodies against the schema: type (arrays with "null", integer vs
// number), properties, required, additionalProperties, items, enum/const, numeric and length
// bounds, pattern, date-time format, $ref, allOf/anyOf/oneOf. Only what openapi.yaml uses.
import Foundation
import Testing
import Yams

/// A JSON (or YAML) value: what bodies and the OpenAPI document are made of.
package indirect enum JSONNode: Sendable, Equatable, Decodable, CustomStringConvertible {
    case null, bool(Bool), int(Int), double(Double), string(String), array([JSONNode]), object([String: JSONNode])

    /// Decodes any JSON; integers stay `.int`, so "integer" and "number" can be told apart.
    package init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let v = try? c.decode(Bool.self) { self = .bool(v) }
        else if let v = try? c.decode(Int.self) { self = .int(v) }
        else if let v = try? c.decode(Double.self) { self = .double(v) }
        else if let v = try? c.decode(String.self) { self = .string(v) }
        else if let v = try? c.decode([JSONNode].self) { self = .array(v) }
        else { self = .object(try c.decode([String: JSONNode].self)) }
    }

    /// Converts what `Yams.load` returns (timestamps and other scalars become strings).
    package init(yaml: Any?) {
        switch yaml {
        case nil, is NSNull: self = .null
        case let v as Bool: self = .bool(v)
        case let v as Int: self = .int(v)
        case let v as Double: self = .double(v)
        case let v as String: self = .string(v)
        case let v as [Any]: self = .array(v.map { JSONNode(yaml: $0) })
        case let v as [AnyHashable: Any]:
            self = .object(Dictionary(v.map { (String(describing: $0.key.base), JSONNode(yaml: $0.value)) },
                                      uniquingKeysWith: { a, _ in a }))
        case let v as [String: Any]: self = .object(v.mapValues { JSONNode(yaml: $0) })
        case let v?: self = .string(String(describing: v))
        }
    }

    package subscript(key: String) -> JSONNode? { if case .object(let o) = self { o[key] } else { nil } }
    package var string: String? { if case .string(let s) = self { s } else { nil } }
    package var number: Double? {
        switch self { case .int(let i): Double(i); case .double(let d): d; default: nil }
    }
    package var typeName: String {
        switch self {
        case .null: "null"; case .bool: "boolean"; case .int: "integer"; case .double: "number"
        case .string: "string"; case .array: "array"; case .object: "object"
        }
    }
    package var description: String {
        switch self {
        case .null: "null"; case .bool(let b): "\(b)"; case .int(let i): "\(i)"; case .double(let d): "\(d)"
        case .string(let s): "\"\(s)\""; case .array(let a): "[\(a.map(\.description).joined(separator: ", "))]"
        case .object(let o): "{\(o.keys.sorted().joined(separator: ", "))}"
        }
    }
    /// JSON Schema equality: 1 == 1.0.
    package static func == (a: JSONNode, b: JSONNode) -> Bool {
        switch (a, b) {
        case (.null, .null): true
        case (.bool(let x), .bool(let y)): x == y
        case (.string(let x), .string(let y)): x == y
        case (.array(let x), .array(let y)): x == y
        case (.object(let x), .object(let y)): x == y
        default: a.number != nil && a.number == b.number
        }
    }
}

/// Validates responses against an OpenAPI 3.1 document.
package struct OpenAPIValidator: Sendable {
    package let document: JSONNode

    package init(document: JSONNode) { self.document = document }

    /// Parses the YAML text of an OpenAPI document.
    package init(yaml: String) throws {
        let node = JSONNode(yaml: try Yams.load(yaml: yaml))
        guard node["paths"] != nil else { throw ValidatorError("not an OpenAPI document: no paths") }
        self.init(document: node)
    }

    package init(yamlPath: String) throws {
        try self.init(yaml: try String(contentsOfFile: yamlPath, encoding: .utf8))
    }

    /// The repository's openapi.yaml (this file is Tests/TestSupport/OpenAPIValidator.swift).
    package init() throws {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        try self.init(yamlPath: url.appendingPathComponent("openapi.yaml").path)
    }

    package struct ValidatorError: Error, CustomStringConvertible {
        package let description: String
        init(_ d: String) { description = d }
    }

    /// Everything wrong with one response; empty when it conforms. `path` is concrete (query
    /// allowed), e.g. `/v1/models/abc?limit=5`. Headers are checked only when given (names are
    /// compared case-insensitively).
    package func problems(method: String, path: String, status: Int, contentType: String?, body: Data,
                  headers: [String: String]? = nil) -> [String] {
        let where_ = "\(method.uppercased()) \(path) → \(status)"
        let bare = String(path.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
        guard case .object(let paths)? = document["paths"] else { return ["\(where_): the document has no paths"] }
        guard let template = matchTemplate(bare, templates: Array(paths.keys)), let item = paths[template] else {
            return ["\(where_): no path template matches \(bare)"]
        }
        guard let operation = item[method.lowercased()] else {
            return ["\(where_): \(method.uppercased()) is not documented for \(template)"]
        }
        guard case .object(let responses)? = operation["responses"],
              let documented = responses[String(status)] ?? responses["\(status / 100)XX"] ?? responses["default"]
        else { return ["\(where_): status \(status) is not documented for \(method.uppercased()) \(template)"] }
        let response = resolve(documented)
        var out: [String] = []

        if let headers, case .object(let specs)? = response["headers"] {
            let given = Set(headers.keys.map { $0.lowercased() })
            for (name, spec) in specs where resolve(spec)["required"] == .bool(true) && !given.contains(name.lowercased()) {
                out.append("\(where_): missing header \(name)")
            }
        }
        guard case .object(let content)? = response["content"], !content.isEmpty else {
            if !body.isEmpty { out.append("\(where_): documented without a body, got \(body.count) bytes") }
            return out
        }
        guard let contentType else { return out + ["\(where_): no Content-Type; expected one of \(content.keys.sorted())"] }
        let mediaType = contentType.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
        let major = mediaType.split(separator: "/").first.map(String.init) ?? ""
        guard let media = content[mediaType] ?? content["\(major)/*"] ?? content["*/*"] else {
            return out + ["\(where_): Content-Type \(contentType) is not documented; expected one of \(content.keys.sorted())"]
        }
        guard mediaType == "application/json" || mediaType.hasSuffix("+json"), let schema = media["schema"] else { return out }
        let value: JSONNode
        do { value = try JSONDecoder().decode(JSONNode.self, from: body) } catch {
            return out + ["\(where_): body is not JSON: \(String(decoding: body.prefix(200), as: UTF8.self))"]
        }
        return out + validate(value, schema, at: "$").map { "\(where_): \($0)" }
    }

    /// The first template (fewest parameters first) whose `{name}` parts match non-empty segment text.
    package func matchTemplate(_ path: String, templates: [String]) -> String? {
        let ordered = templates.sorted { ($0.filter { $0 == "{" }.count, $0) < ($1.filter { $0 == "{" }.count, $1) }
        return ordered.first { template in
            var pattern = "", inParam = false
            for ch in template {
                if ch == "{" { inParam = true; pattern += "[^/]+" }
                else if ch == "}" { inParam = false }
                else if !inParam { pattern += "\\^$.|?*+()[]{}/".contains(ch) ? "\\\(ch)" : String(ch) }
            }
            guard let regex = try? Regex(pattern) else { return false }
            return (try? regex.wholeMatch(in: path)) != nil
        }
    }

    /// Follows local `$ref`s (`#/components/...`) until a node without one.
    package func resolve(_ node: JSONNode) -> JSONNode {
        var node = node, hops = 0
        while let ref = node["$ref"]?.string, hops < 32, let target = lookup(ref) { node = target; hops += 1 }
        return node
    }

    package func lookup(_ ref: String) -> JSONNode? {
        guard ref.hasPrefix("#/") else { return nil }
        var node: JSONNode? = document
        for token in ref.dropFirst(2).split(separator: "/") {
            let key = token.replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~")
            node = node?[key]
        }
        return node
    }

    /// JSON Schema (2020-12 subset) validation; each problem names its JSON path.
    package func validate(_ value: JSONNode, _ schema: JSONNode, at: String) -> [String] {
        if case .bool(let allowed) = schema { return allowed ? [] : ["\(at): no value is allowed here"] }
        var out: [String] = []
        if let ref = schema["$ref"]?.string {
            guard let target = lookup(ref) else { return ["\(at): unresolvable $ref \(ref)"] }
            out += validate(value, target, at: at)
        }
        if case .array(let all)? = schema["allOf"] { for s in all { out += validate(value, s, at: at) } }
        if case .array(let any)? = schema["anyOf"] {
            let results = any.map { validate(value, $0, at: at) }
            if !results.contains(where: \.isEmpty) {
                // Report the closest branch, preferring one whose type fits (not `null` for an object).
                let typeFits = results.filter { !$0.contains { $0.hasPrefix("\(at): expected ") } }
                out += (typeFits.isEmpty ? results : typeFits).min { $0.count < $1.count } ?? ["\(at): matches no anyOf branch"]
            }
        }
        if case .array(let one)? = schema["oneOf"] {
            let passing = one.filter { validate(value, $0, at: at).isEmpty }.count
            if passing != 1 { out.append("\(at): \(value.description.prefix(80)) matches \(passing) oneOf branches, not 1") }
        }
        if let types = schema["type"] {
            let names: [String] = if case .array(let a) = types { a.compactMap(\.string) } else { types.string.map { [$0] } ?? [] }
            if !names.contains(where: { Self.has(value, type: $0) }) {
                return out + ["\(at): expected \(names.joined(separator: " or ")), got \(value.typeName) \(value.description.prefix(80))"]
            }
        }
        if case .array(let options)? = schema["enum"], !options.contains(value) {
            out.append("\(at): \(value) is not one of \(options.map(\.description).joined(separator: ", "))")
        }
        if let c = schema["const"], c != value { out.append("\(at): \(value) is not \(c)") }
        if let x = value.number {
            for (keyword, fails) in [("minimum", { $0 < $1 }), ("maximum", { $0 > $1 }), ("exclusiveMinimum", { $0 <= $1 }),
                                     ("exclusiveMaximum", { $0 >= $1 })] as [(String, (Double, Double) -> Bool)] {
                if let bound = schema[keyword], let m = bound.number, fails(x, m) { out.append("\(at): \(value) is beyond \(keyword) \(bound)") }
            }
        }
        if case .string(let s) = value {
            if let m = schema["minLength"]?.number, Double(s.count) < m { out.append("\(at): shorter than \(Int(m)) characters") }
            if let m = schema["maxLength"]?.number, Double(s.count) > m { out.append("\(at): longer than \(Int(m)) characters") }
            if let p = schema["pattern"]?.string, let regex = try? Regex(p), (try? regex.firstMatch(in: s)) == nil {
                out.append("\(at): \"\(s)\" does not match /\(p)/")
            }
            if schema["format"]?.string == "date-time", !Self.isDateTime(s) { out.append("\(at): \"\(s)\" is not an RFC 3339 date-time") }
        }
        if case .array(let items) = value {
            if let m = schema["minItems"]?.number, Double(items.count) < m { out.append("\(at): fewer than \(Int(m)) items") }
            if let m = schema["maxItems"]?.number, Double(items.count) > m { out.append("\(at): more than \(Int(m)) items") }
            if let itemSchema = schema["items"] {
                for (i, item) in items.enumerated() { out += validate(item, itemSchema, at: "\(at)[\(i)]") }
            }
        }
        if case .object(let fields) = value {
            if case .array(let required)? = schema["required"] {
                for name in required.compactMap(\.string) where fields[name] == nil { out.append("\(at): missing required \(name)") }
            }
            let properties: [String: JSONNode] = if case .object(let p)? = schema["properties"] { p } else { [:] }
            for (name, field) in fields.sorted(by: { $0.key < $1.key }) {
                if let p = properties[name] { out += validate(field, p, at: "\(at).\(name)") }
                else if let extra = schema["additionalProperties"] {
                    if extra == .bool(false) { out.append("\(at): unexpected property \(name)") }
                    else { out += validate(field, extra, at: "\(at).\(name)") }
                }
            }
        }
        return out
    }

    package static func has(_ value: JSONNode, type: String) -> Bool {
        switch (type, value) {
        case ("null", .null), ("boolean", .bool), ("string", .string), ("array", .array), ("object", .object): true
        case ("integer", .int), ("number", .int), ("number", .double): true
        case ("integer", .double(let d)): d.rounded() == d && d.isFinite
        default: false
        }
    }

    /// RFC 3339 date-time: 2026-11-23T12:00:00Z, fractional seconds and offsets allowed.
    package static func isDateTime(_ s: String) -> Bool {
        guard let regex = try? Regex(#"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})"#) else { return false }
        return (try? regex.wholeMatch(in: s)) != nil
    }
}

extension OpenAPIValidator {
    /// One validator for every suite: openapi.yaml is read once.
    package static let shared = try? OpenAPIValidator()
}

/// Records an issue for every way `r` departs from openapi.yaml (the path's query string is ignored)
/// and returns `r`, so a request can be checked where it is made.
@discardableResult
package func checked(_ r: TestResponse, _ method: String, _ path: String, sourceLocation: SourceLocation = #_sourceLocation) -> TestResponse {
    guard let v = OpenAPIValidator.shared else { Issue.record("openapi.yaml did not load", sourceLocation: sourceLocation); return r }
    let problems = v.problems(method: method, path: path.split(separator: "?").first.map(String.init) ?? path,
                              status: r.status, contentType: r.header("Content-Type"), body: r.body)
    #expect(problems.isEmpty, "\(method) \(path) → \(r.status): \(problems)", sourceLocation: sourceLocation)
    return r
}
