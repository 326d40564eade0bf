// HTTPRequestParser: a pure, incremental HTTP/1.1 request parser (RFC 9112). Bytes in; one event
// out per call (head, body chunk, end, or "need more"); no I/O, no allocation per body byte.
//
// The caller keeps the unconsumed bytes and presents them again, followed by new ones, on the next
// call. After `.end` the parser is ready for the next (pipelined) request.

/// An incremental request parser.
public struct HTTPRequestParser: Sendable {
    /// What one `parse` call found.
    public enum Event: Sendable {
        /// The buffer holds no complete next element; call again with more bytes.
        case needMore
        /// A request head.
        case head(RequestHead)
        /// Body bytes: this range of the buffer passed in (decoded from chunked framing if needed).
        case body(Range<Int>)
        /// The body is complete; trailers of a chunked body (empty otherwise).
        case end(trailers: HTTPHeaders)
    }

    private enum ChunkStep: Sendable { case size, extensions, sizeLF, data, dataCR, dataLF }

    private enum State: Sendable {
        case head(scanned: Int)
        case lengthBody(remaining: Int, declared: Int)
        case chunked(step: ChunkStep, size: Int, digits: Int, lineBytes: Int)
        case trailers
        case failed(HTTPParseError)
    }

    /// The limits in force; `bodyLimit` may be changed per request with `setBodyLimit`.
    public let limits: HTTPParserLimits
    private var state: State = .head(scanned: 0)
    private var bodyLimit: Int
    private var bodyBytes = 0
    private var trailerBytes: [UInt8] = []
    private var lengthChecked = false

    /// Makes a parser waiting for a request head.
    public init(limits: HTTPParserLimits = HTTPParserLimits()) {
        self.limits = limits
        self.bodyLimit = limits.maxBodyBytes
    }

    /// Sets the body limit for the current request (call right after its `.head`).
    public mutating func setBodyLimit(_ bytes: Int) { bodyLimit = bytes }

    /// True while between requests (no byte of the next head consumed).
    public var isAtRequestBoundary: Bool { if case .head = state { return true } else { return false } }

    /// Parses from the start of `buffer`; returns one event and how many bytes it consumed.
    public mutating func parse(_ buffer: UnsafeRawBufferPointer) throws(HTTPParseError) -> (event: Event, consumed: Int) {
        do {
            return try step(buffer)
        } catch {
            state = .failed(error)
            throw error
        }
    }

    private mutating func step(_ buffer: UnsafeRawBufferPointer) throws(HTTPParseError) -> (event: Event, consumed: Int) {
        switch state {
        case .failed(let error):
            throw error
        case .head(let scanned):
            return try parseHead(buffer, scanned: scanned)
        case .lengthBody(let remaining, let declared):
            if !lengthChecked {
                lengthChecked = true
                if declared > bodyLimit { throw HTTPParseError.bodyTooLarge(limit: bodyLimit, declared: declared) }
            }
            if remaining == 0 { return finish(trailers: HTTPHeaders(), consumed: 0) }
            let n = min(remaining, buffer.count)
            if n == 0 { return (.needMore, 0) }
            state = .lengthBody(remaining: remaining - n, declared: declared)
            return (.body(0..<n), n)
        case .chunked(let step, let size, let digits, let lineBytes):
            return try parseChunked(buffer, step: step, size: size, digits: digits, lineBytes: lineBytes)
        case .trailers:
            return try parseTrailers(buffer)
        }
    }

    private mutating func finish(trailers: HTTPHeaders, consumed: Int) -> (event: Event, consumed: Int) {
        state = .head(scanned: 0)
        bodyLimit = limits.maxBodyBytes
        bodyBytes = 0
        trailerBytes = []
        lengthChecked = false
        return (.end(trailers: trailers), consumed)
    }

    // MARK: head

    private mutating func parseHead(_ buffer: UnsafeRawBufferPointer, scanned: Int) throws(HTTPParseError) -> (event: Event, consumed: Int) {
        // Skip empty lines before a request line (RFC 9112 §2.2).
        var skip = 0
        while skip + 1 < buffer.count, buffer[skip] == 0x0D, buffer[skip + 1] == 0x0A { skip += 2 }
        if skip > 0 {
            state = .head(scanned: 0)
            return (.needMore, skip)
        }
        if buffer.count == 1 && buffer[0] == 0x0D { return (.needMore, 0) }
        var i = max(scanned, 0)
        let count = buffer.count
        while i < count {
            let b = buffer[i]
            if b == 0x0A {
                guard i > 0, buffer[i - 1] == 0x0D else { throw HTTPParseError(.badRequest, "bare LF in header section") }
                if i >= 3, buffer[i - 2] == 0x0A, buffer[i - 3] == 0x0D {
                    let headLength = i + 1
                    guard headLength <= limits.maxHeaderBytes + 4 else {
                        throw HTTPParseError(.headerFieldsTooLarge, "header section exceeds \(limits.maxHeaderBytes) bytes")
                    }
                    let bytes = Array(buffer[0..<(i - 3)])
                    let head = try RequestHeadDecoder.decode(bytes[...], limits: limits)
                    enterBody(head.framing)
                    return (.head(head), headLength)
                }
            } else if b == 0x0D, i + 1 < count, buffer[i + 1] != 0x0A {
                throw HTTPParseError(.badRequest, "bare CR in header section")
            } else if b == 0 {
                throw HTTPParseError(.badRequest, "NUL in header section")
            }
            i += 1
        }
        if count > limits.maxHeaderBytes + 4 {
            throw HTTPParseError(.headerFieldsTooLarge, "header section exceeds \(limits.maxHeaderBytes) bytes")
        }
        if count >= 24, buffer.starts(with: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8) {
            throw HTTPParseError(.httpVersionNotSupported, "HTTP/2 connection preface")
        }
        // Resume scanning where we stopped, minus the bytes a CRLFCRLF could straddle.
        state = .head(scanned: max(0, count - 1))
        return (.needMore, 0)
    }

    private mutating func enterBody(_ framing: BodyFraming) {
        bodyBytes = 0
        lengthChecked = false
        switch framing {
        case .none: state = .lengthBody(remaining: 0, declared: 0)
        case .length(let n): state = .lengthBody(remaining: n, declared: n)
        case .chunked: state = .chunked(step: .size, size: 0, digits: 0, lineBytes: 0)
        }
    }

    // MARK: chunked

    private static let maxChunkLine = 4096

    private mutating func parseChunked(_ buffer: UnsafeRawBufferPointer, step stepIn: ChunkStep, size sizeIn: Int,
                                       digits digitsIn: Int, lineBytes lineIn: Int) throws(HTTPParseError) -> (event: Event, consumed: Int) {
        var step = stepIn, size = sizeIn, digits = digitsIn, line = lineIn
        var i = 0
        while i < buffer.count {
            let b = buffer[i]
            switch step {
            case .size:
                if let v = ByteClasses.hexValue(b) {
                    digits += 1
                    guard digits <= 15 else { throw HTTPParseError(.contentTooLarge, "chunk size too large") }
                    size = size * 16 + v
                } else if digits == 0 {
                    throw HTTPParseError(.badRequest, "malformed chunk size")
                } else if b == 0x0D {
                    step = .sizeLF
                } else if b == 0x3B || b == 0x20 || b == 0x09 {
                    step = .extensions
                } else {
                    throw HTTPParseError(.badRequest, "malformed chunk size")
                }
                line += 1
            case .extensions:
                line += 1
                if b == 0x0D { step = .sizeLF } else if b == 0x0A || (b < 0x20 && b != 0x09) || b == 0x7F {
                    throw HTTPParseError(.badRequest, "malformed chunk extension")
                }
            case .sizeLF:
                guard b == 0x0A else { throw HTTPParseError(.badRequest, "bare CR in chunk size line") }
                i += 1
                let (total, overflow) = bodyBytes.addingReportingOverflow(size)
                guard !overflow, total <= bodyLimit else { throw HTTPParseError.bodyTooLarge(limit: bodyLimit) }
                bodyBytes = total
                if size == 0 {
                    state = .trailers
                    trailerBytes = []
                    return (.needMore, i)
                }
                state = .chunked(step: .data, size: size, digits: 0, lineBytes: 0)
                return (.needMore, i)
            case .data:
                let n = min(size, buffer.count - i)
                size -= n
                state = .chunked(step: size == 0 ? .dataCR : .data, size: size, digits: 0, lineBytes: 0)
                if i > 0 { return (.needMore, i) }  // unreachable: data starts a fresh call
                return (.body(0..<n), n)
            case .dataCR:
                guard b == 0x0D else { throw HTTPParseError(.badRequest, "chunk data not followed by CRLF") }
                step = .dataLF
            case .dataLF:
                guard b == 0x0A else { throw HTTPParseError(.badRequest, "chunk data not followed by CRLF") }
                step = .size; size = 0; digits = 0; line = 0
            }
            if line > Self.maxChunkLine { throw HTTPParseError(.badRequest, "chunk size line too long") }
            i += 1
        }
        state = .chunked(step: step, size: size, digits: digits, lineBytes: line)
        return (.needMore, i)
    }

    private mutating func parseTrailers(_ buffer: UnsafeRawBufferPointer) throws(HTTPParseError) -> (event: Event, consumed: Int) {
        var i = 0
        while i < buffer.count {
            let b = buffer[i]
            i += 1
            if b == 0x0A {
                let n = trailerBytes.count
                guard n > 0, trailerBytes[n - 1] == 0x0D else { throw HTTPParseError(.badRequest, "bare LF in trailers") }
                if n == 1 { return finish(trailers: HTTPHeaders(), consumed: i) }
                if n >= 3, trailerBytes[n - 2] == 0x0A, trailerBytes[n - 3] == 0x0D {
                    var fields = HTTPHeaders()
                    for line in RequestHeadDecoder.splitLines(trailerBytes[0..<(n - 3)]) {
                        fields.add(try RequestHeadDecoder.decodeField(line))
                    }
                    return finish(trailers: fields, consumed: i)
                }
            } else if b == 0 {
                throw HTTPParseError(.badRequest, "NUL in trailers")
            }
            trailerBytes.append(b)
            guard trailerBytes.count <= limits.maxHeaderBytes else {
                throw HTTPParseError(.headerFieldsTooLarge, "trailer section too large")
            }
        }
        return (.needMore, i)
    }
}
