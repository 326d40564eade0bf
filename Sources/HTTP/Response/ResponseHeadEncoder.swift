// ResponseHeadEncoder: serializes a status line and header section, adding the framing headers
// (Content-Length or Transfer-Encoding), Date and Connection the server owns.

enum ResponseHeadEncoder {
    /// How the body that follows the head is framed.
    enum Framing { case length(Int), chunked, untilClose, none }

    /// The head bytes; `keepAlive` decides `Connection`, `version` the status line's protocol.
    static func encode(status: HTTPStatus, headers: HTTPHeaders, framing: Framing, keepAlive: Bool,
                       version: HTTPVersion, into out: inout [UInt8]) {
        out.append(contentsOf: version == .http1_0 ? "HTTP/1.0 ".utf8 : "HTTP/1.1 ".utf8)
        out.append(contentsOf: String(status.code).utf8)
        out.append(0x20)
        out.append(contentsOf: status.reasonPhrase.utf8)
        out.append(0x0D); out.append(0x0A)
        for field in headers {
            if HTTPHeaders.equalsIgnoringCase(field.name, "Content-Length")
                || HTTPHeaders.equalsIgnoringCase(field.name, "Transfer-Encoding")
                || HTTPHeaders.equalsIgnoringCase(field.name, "Connection") { continue }
            out.append(contentsOf: field.name.utf8)
            out.append(0x3A); out.append(0x20)
            for b in field.value.utf8 where b != 0x0D && b != 0x0A { out.append(b) }
            out.append(0x0D); out.append(0x0A)
        }
        switch framing {
        case .length(let n):
            out.append(contentsOf: "Content-Length: ".utf8)
            out.append(contentsOf: String(n).utf8)
            out.append(0x0D); out.append(0x0A)
        case .chunked:
            out.append(contentsOf: "Transfer-Encoding: chunked\r\n".utf8)
        case .untilClose, .none:
            break
        }
        if !keepAlive {
            out.append(contentsOf: "Connection: close\r\n".utf8)
        } else if version == .http1_0 {
            out.append(contentsOf: "Connection: keep-alive\r\n".utf8)
        }
        out.append(contentsOf: HTTPDate.headerLine())
        out.append(0x0D); out.append(0x0A)
    }
}
