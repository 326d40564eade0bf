// Unit tests of the pure incremental parser: events, framing, byte-at-a-time feeding, rejections.

import Testing
@testable import HTTP

/// Feeds `input` in pieces of `step` bytes, returning the events (body bytes concatenated) or the error.
func parseAll(_ input: [UInt8], step: Int = .max, limits: HTTPParserLimits = HTTPParserLimits())
    -> (heads: [RequestHead], bodies: [[UInt8]], trailers: [HTTPHeaders], error: HTTPParseError?) {
    var parser = HTTPRequestParser(limits: limits)
    var pending: [UInt8] = []
    var heads: [RequestHead] = [], bodies: [[UInt8]] = [], trailers: [HTTPHeaders] = []
    var offset = 0
    while true {
        let take = min(step, input.count - offset)
        pending += input[offset..<(offset + take)]
        offset += take
        while true {
            let result: (HTTPRequestParser.Event, Int)
            do {
                result = try pending.withUnsafeBytes { try parser.parse($0) }
            } catch {
                return (heads, bodies, trailers, error as? HTTPParseError)
            }
            let (event, consumed) = result
            switch event {
            case .needMore: break
            case .head(let h): heads.append(h); bodies.append([])
            case .body(let r): bodies[bodies.count - 1] += pending[r]
            case .end(let t): trailers.append(t)
            }
            pending.removeFirst(consumed)
            if case .needMore = event, consumed == 0 { break }
        }
        if offset == input.count { return (heads, bodies, trailers, nil) }
    }
}

@Suite struct ParserTests {
    @Test func simpleGetWithQueryAndRepeatedHeaders() {
        let r = parseAll(Array("GET /a%20b/c?x=1&y=hello+world&z=%C3%A9 HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nx-a: 2\r\n\r\n".utf8))
        #expect(r.error == nil)
        let h = try! #require(r.heads.first)
        #expect(h.method == .get)
        #expect(h.path == "/a b/c")
        #expect(h.query == [QueryItem(name: "x", value: "1"), QueryItem(name: "y", value: "hello world"), QueryItem(name: "z", value: "é")])
        #expect(h.headers.values("X-A") == ["1", "2"])
        #expect(h.keepAlive)
        #expect(r.trailers.count == 1)
    }

    @Test func keepAliveRules() {
        let h10 = parseAll(Array("GET / HTTP/1.0\r\n\r\n".utf8)).heads[0]
        #expect(!h10.keepAlive)
        let h10k = parseAll(Array("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n".utf8)).heads[0]
        #expect(h10k.keepAlive)
        let h11c = parseAll(Array("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n".utf8)).heads[0]
        #expect(!h11c.keepAlive)
    }

    @Test(arguments: [1, 2, 3, 7, 64, Int.max])
    func chunkedWithTrailersAtAnySplit(step: Int) {
        let raw = "POST /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
            + "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Checksum: abc\r\n\r\n"
            + "GET /next HTTP/1.1\r\nHost: h\r\n\r\n"
        let r = parseAll(Array(raw.utf8), step: step)
        #expect(r.error == nil)
        #expect(r.heads.map(\.path) == ["/u", "/next"])
        #expect(String(decoding: r.bodies[0], as: UTF8.self) == "hello world")
        #expect(r.trailers.first?["x-checksum"] == "abc")
    }

    @Test func contentLengthBodyAndPipelining() {
        let raw = "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabcGET /b HTTP/1.1\r\nHost: h\r\n\r\n\r\nGET /c HTTP/1.1\r\nHost: h\r\n\r\n"
        let r = parseAll(Array(raw.utf8), step: 5)
        #expect(r.heads.map(\.path) == ["/a", "/b", "/c"])
        #expect(r.bodies[0] == Array("abc".utf8))
    }

    static let rejections: [(String, Int)] = [
        ("GARBAGE\r\n\r\n", 400),
        ("GET /\r\nHost: h\r\n\r\n", 400),
        ("GET / HTTP/1.1 extra\r\nHost: h\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: h\r\nBad Header\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: h\r\nX-A : 1\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n continued\r\n\r\n", 400),
        ("GET / HTTP/1.1\nHost: h\n\n", 400),
        ("GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        ("GET /%zz HTTP/1.1\r\nHost: h\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 4\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        ("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX", 400),
        ("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
        ("GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505),
        ("GET / HTTP/3.0\r\nHost: h\r\n\r\n", 505),
        ("GET / HTTP/1.1\r\nHost: h\r\nExpect: tea\r\n\r\n", 417),
        ("GET / HTTP/1.1\r\nHost: h\r\nX: " + String(repeating: "a", count: 17_000) + "\r\n\r\n", 431),
        ("GET / HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer a\r\nauthorization: Bearer b\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: h\r\nProxy-Authorization: Basic a\r\nProxy-Authorization: Basic b\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: h\r\nHost: i\r\n\r\n", 400),
    ]

    @Test(arguments: 0..<rejections.count)
    func rejects(index: Int) {
        let (raw, status) = Self.rejections[index]
        for step in [1, 3, Int.max] {
            let r = parseAll(Array(raw.utf8), step: step)
            #expect(r.error?.status.code == status, "\(raw.prefix(60).debugDescription) step \(step): \(String(describing: r.error))")
        }
    }

    @Test func duplicateAuthorizationNamesTheHeader() {
        let r = parseAll(Array("GET / HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer a\r\nAuthorization: Bearer b\r\n\r\n".utf8))
        #expect(r.heads.isEmpty)
        #expect(r.error == HTTPParseError(.badRequest, "more than one Authorization header"))
        let one = parseAll(Array("GET / HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer a\r\n\r\n".utf8))
        #expect(one.heads.first?.headers["Authorization"] == "Bearer a")
    }

    @Test func bodyLimits() {
        var limits = HTTPParserLimits()
        limits.maxBodyBytes = 4
        let cl = parseAll(Array("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nabcde".utf8), limits: limits)
        #expect(cl.error?.status == .contentTooLarge)
        let ch = parseAll(Array("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n".utf8), limits: limits)
        #expect(ch.error?.status == .contentTooLarge)
    }

    @Test func absoluteFormTarget() {
        let h = parseAll(Array("GET http://example.com/x/y?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n".utf8)).heads[0]
        #expect(h.path == "/x/y")
        #expect(h.query.first?.value == "1")
    }
}
