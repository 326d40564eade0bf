// RequestHeadDecoder: turns one complete header section (request line + fields, CRLF-separated)
// into a validated RequestHead, applying RFC 9112's framing and anti-smuggling rules.

enum RequestHeadDecoder {
    /// Decodes `bytes` (the head without its final empty line); throws the status to answer with.
    static func decode(_ bytes: ArraySlice<UInt8>, limits: HTTPParserLimits) throws(HTTPParseError) -> RequestHead {
        var lines = splitLines(bytes)
        guard !lines.isEmpty else { throw HTTPParseError(.badRequest, "empty request") }
        let requestLine = lines.removeFirst()
        let (method, target, version) = try decodeRequestLine(requestLine)
        guard lines.count <= limits.maxHeaderCount else { throw HTTPParseError(.headerFieldsTooLarge, "too many header fields") }
        let headers = try decodeFields(lines)
        let (rawPath, path, query) = try decodeTarget(target, method: method)
        return try applySemantics(RequestHead(
            method: method, target: String(decoding: target, as: UTF8.self), rawPath: rawPath, path: path,
            query: query, version: version, headers: headers, framing: .none, keepAlive: true, expectContinue: false))
    }

    /// Splits on CRLF; the caller guaranteed every LF is preceded by CR.
    static func splitLines(_ bytes: ArraySlice<UInt8>) -> [ArraySlice<UInt8>] {
        var lines: [ArraySlice<UInt8>] = []
        var start = bytes.startIndex
        var i = bytes.startIndex
        while i < bytes.endIndex {
            if bytes[i] == 0x0A {
                lines.append(bytes[start..<(i - 1)])
                start = i + 1
            }
            i += 1
        }
        if start < bytes.endIndex { lines.append(bytes[start..<bytes.endIndex]) }
        return lines
    }

    static func decodeRequestLine(_ line: ArraySlice<UInt8>) throws(HTTPParseError) -> (HTTPMethod, ArraySlice<UInt8>, HTTPVersion) {
        let parts = line.split(separator: 0x20, maxSplits: 3, omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, !parts[1].isEmpty else {
            throw HTTPParseError(.badRequest, "malformed request line")
        }
        guard parts[0].allSatisfy({ ByteClasses.token[Int($0)] }) else { throw HTTPParseError(.badRequest, "invalid method") }
        let version = try decodeVersion(parts[2])
        guard parts[1].allSatisfy({ ByteClasses.target[Int($0)] }) else { throw HTTPParseError(.badRequest, "invalid request target") }
        return (HTTPMethod(String(decoding: parts[0], as: UTF8.self)), parts[1], version)
    }

    static func decodeVersion(_ v: ArraySlice<UInt8>) throws(HTTPParseError) -> HTTPVersion {
        let b = Array(v)
        guard b.count == 8, b[0..<5].elementsEqual("HTTP/".utf8), b[6] == 0x2E,
              let major = digit(b[5]), let minor = digit(b[7]) else {
            throw HTTPParseError(.badRequest, "malformed HTTP version")
        }
        guard major == 1 else { throw HTTPParseError(.httpVersionNotSupported, "HTTP/\(major).\(minor) is not supported") }
        return minor == 0 ? .http1_0 : .http1_1
    }

    private static func digit(_ b: UInt8) -> Int? { b >= 0x30 && b <= 0x39 ? Int(b - 0x30) : nil }

    static func decodeFields(_ lines: [ArraySlice<UInt8>]) throws(HTTPParseError) -> HTTPHeaders {
        var headers = HTTPHeaders()
        for line in lines {
            headers.add(try decodeField(line))
        }
        return headers
    }

    /// Decodes one `name: value` line (also used for chunked trailers).
    static func decodeField(_ line: ArraySlice<UInt8>) throws(HTTPParseError) -> HTTPHeaders.Field {
        guard let first = line.first else { throw HTTPParseError(.badRequest, "empty header line") }
        if first == 0x20 || first == 0x09 { throw HTTPParseError(.badRequest, "obsolete line folding") }
        guard let colon = line.firstIndex(of: 0x3A), colon > line.startIndex else {
            throw HTTPParseError(.badRequest, "malformed header line")
        }
        let name = line[line.startIndex..<colon]
        guard name.allSatisfy({ ByteClasses.token[Int($0)] }) else { throw HTTPParseError(.badRequest, "invalid header name") }
        var lo = colon + 1, hi = line.endIndex
        while lo < hi, line[lo] == 0x20 || line[lo] == 0x09 { lo += 1 }
        while hi > lo, line[hi - 1] == 0x20 || line[hi - 1] == 0x09 { hi -= 1 }
        let value = line[lo..<hi]
        guard value.allSatisfy({ ByteClasses.fieldValue[Int($0)] }) else { throw HTTPParseError(.badRequest, "invalid header value") }
        return HTTPHeaders.Field(name: String(decoding: name, as: UTF8.self), value: String(decoding: value, as: UTF8.self))
    }

    static func decodeTarget(_ target: ArraySlice<UInt8>, method: HTTPMethod) throws(HTTPParseError) -> (String, String, [QueryItem]) {
        var t = target
        if t.count == 1 && t.first == 0x2A {
            guard method == .options else { throw HTTPParseError(.badRequest, "asterisk target outside OPTIONS") }
            return ("*", "*", [])
        }
        if t.first != 0x2F {
            // absolute-form: scheme "://" authority path
            let lower = t.prefix(8).map(asciiLower)
            let skip = lower.starts(with: "http://".utf8) ? 7 : lower.starts(with: "https://".utf8) ? 8 : -1
            guard skip > 0 else { throw HTTPParseError(.badRequest, "unsupported request target form") }
            t = t.dropFirst(skip)
            if let slash = t.firstIndex(where: { $0 == 0x2F || $0 == 0x3F }) { t = t[slash...] } else { t = ArraySlice("/".utf8) }
            if t.first == 0x3F { t = ArraySlice("/".utf8) + t }
        }
        let q = t.firstIndex(of: 0x3F)
        let rawPathBytes = t[t.startIndex..<(q ?? t.endIndex)]
        guard let path = PercentDecoding.decode(rawPathBytes) else { throw HTTPParseError(.badRequest, "malformed percent-encoding in path") }
        var query: [QueryItem] = []
        if let q {
            guard let items = PercentDecoding.decodeQuery(t[(q + 1)...]) else { throw HTTPParseError(.badRequest, "malformed query string") }
            query = items
        }
        return (String(decoding: rawPathBytes, as: UTF8.self), path, query)
    }

    /// Host, Authorization, Content-Length, Transfer-Encoding, Connection and Expect rules.
    static func applySemantics(_ headIn: RequestHead) throws(HTTPParseError) -> RequestHead {
        var head = headIn
        let hosts = head.headers.values("Host")
        if hosts.count > 1 || (head.version == .http1_1 && hosts.isEmpty) {
            throw HTTPParseError(.badRequest, "HTTP/1.1 requires exactly one Host header")
        }
        // Credentials must be unambiguous: which of two Authorization fields would auth check?
        for name in singletonFields where head.headers.values(name).count > 1 {
            throw HTTPParseError(.badRequest, "more than one \(name) header")
        }
        let lengths = head.headers.values("Content-Length")
        let codings = head.headers.tokens("Transfer-Encoding")
        let hasTE = head.headers.contains("Transfer-Encoding")
        if hasTE {
            guard lengths.isEmpty else { throw HTTPParseError(.badRequest, "both Content-Length and Transfer-Encoding") }
            guard head.version == .http1_1 else { throw HTTPParseError(.badRequest, "Transfer-Encoding in HTTP/1.0") }
            if let unknown = codings.first(where: { $0 != "chunked" }) {
                throw HTTPParseError(.notImplemented, "unsupported transfer coding '\(unknown)'")
            }
            guard codings.count == 1 else { throw HTTPParseError(.badRequest, "chunked must be applied exactly once") }
            head.framing = .chunked
        } else if !lengths.isEmpty {
            head.framing = .length(try contentLength(lengths))
        }
        let connection = head.headers.tokens("Connection")
        head.keepAlive = head.version == .http1_1 ? !connection.contains("close") : connection.contains("keep-alive")
        if let expect = head.headers["Expect"] {
            guard expect.lowercasedASCII() == "100-continue" else { throw HTTPParseError(.expectationFailed, "unsupported expectation") }
            head.expectContinue = head.version == .http1_1
        }
        return head
    }

    /// Fields a request may carry at most once (besides Host and Content-Length, checked above).
    static let singletonFields = ["Authorization", "Proxy-Authorization"]

    /// One Content-Length value from every field and list element; different values are smuggling.
    static func contentLength(_ values: [String]) throws(HTTPParseError) -> Int {
        var result: Int?
        for field in values {
            for element in field.split(separator: ",", omittingEmptySubsequences: false) {
                let digits = Array(element.trimmingASCIIWhitespace().utf8)
                guard !digits.isEmpty, digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
                    throw HTTPParseError(.badRequest, "invalid Content-Length")
                }
                var n = 0
                for d in digits {
                    let (m, o1) = n.multipliedReportingOverflow(by: 10)
                    let (s, o2) = m.addingReportingOverflow(Int(d - 0x30))
                    if o1 || o2 { throw HTTPParseError(.contentTooLarge, "Content-Length overflows") }
                    n = s
                }
                if let r = result, r != n { throw HTTPParseError(.badRequest, "conflicting Content-Length values") }
                result = n
            }
        }
        return result ?? 0
    }
}

extension HTTPHeaders {
    /// Appends a decoded field.
    mutating func add(_ field: Field) { add(name: field.name, value: field.value) }
}
