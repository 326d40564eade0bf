// AccessLogLine: one request's access-log record, formatted as a text line (the layout swift-log's
// StreamLogHandler gave it before) or as one JSON object per line.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// How access-log lines are written.
public enum AccessLogFormat: String, Sendable, CaseIterable {
    /// `2026-12-01T10:22:02+0000 info pfc.http: bytes=15 ms=0.120 remote=127.0.0.1:50312
    /// request-id=… route=/healthz [HTTP] GET /healthz 200`
    case text
    /// `{"time":"2026-12-01T10:22:02.123Z","request_id":…,"method":"GET","route":"/healthz",
    /// "path":"/healthz","status":200,"bytes_out":15,"latency_ms":0.12,"peer":"127.0.0.1:50312"}`
    case json
}

/// What the access log records about one request.
struct AccessLogLine {
    var requestID: String
    var method: String
    /// The matched route template; nil when no route matched.
    var route: String?
    /// The percent-decoded path.
    var path: String
    var status: Int
    /// Body bytes of a buffered response; nil for a streamed one (its size is not known yet).
    var bytesOut: Int?
    /// From the request head to the handler's answer, in microseconds.
    var latencyMicroseconds: Int64
    var peer: String
    /// Wall-clock time of the answer.
    var time: timespec

    /// The line in `format`, newline included.
    func formatted(_ format: AccessLogFormat, label: String, level: String) -> String {
        switch format {
        case .text: text(label: label, level: level)
        case .json: json()
        }
    }

    /// The text layout: the fields sorted by name as swift-log printed them, then the message.
    /// Bytes a terminal or a log parser would take for a separator (controls, space) are %-escaped.
    func text(label: String, level: String) -> String {
        let bytes = bytesOut.map { String($0) } ?? "-"
        let rid = requestID.isEmpty ? "-" : Self.percentEscaped(requestID)
        return "\(Self.timestamp(time, fractional: false)) \(level) \(label): bytes=\(bytes) ms=\(milliseconds) "
            + "remote=\(Self.percentEscaped(peer)) request-id=\(rid) route=\(Self.percentEscaped(route ?? "-")) "
            + "[HTTP] \(method) \(Self.percentEscaped(path)) \(status)\n"
    }

    /// One JSON object and a newline; `route` and `bytes_out` may be null.
    func json() -> String {
        var s = #"{"time":""# + Self.timestamp(time, fractional: true)
        s += #"","request_id":"# + Self.jsonString(requestID)
        s += #","method":"# + Self.jsonString(method)
        s += #","route":"# + (route.map(Self.jsonString) ?? "null")
        s += #","path":"# + Self.jsonString(path)
        s += #","status":"# + String(status)
        s += #","bytes_out":"# + (bytesOut.map { String($0) } ?? "null")
        s += #","latency_ms":"# + milliseconds
        s += #","peer":"# + Self.jsonString(peer)
        s += "}\n"
        return s
    }

    /// The latency in milliseconds with three decimals ("0.120", "12.034").
    var milliseconds: String {
        let us = max(0, latencyMicroseconds)
        let frac = String(us % 1000)
        return String(us / 1000) + "." + String(repeating: "0", count: 3 - frac.count) + frac
    }

    /// `2026-12-01T10:22:02+0000` (swift-log's layout, in UTC), or `2026-12-01T10:22:02.123Z`.
    static func timestamp(_ t: timespec, fractional: Bool) -> String {
        var seconds = t.tv_sec
        var tm = tm()
        gmtime_r(&seconds, &tm)
        var out: [UInt8] = []
        out.reserveCapacity(24)
        func digits(_ v: Int32, _ n: Int) {
            var div: Int32 = 1
            for _ in 1..<n { div *= 10 }
            var v = v
            while div > 0 { out.append(UInt8(ascii: "0") + UInt8(v / div % 10)); v %= div; div /= 10 }
        }
        digits(tm.tm_year + 1900, 4); out.append(UInt8(ascii: "-"))
        digits(tm.tm_mon + 1, 2); out.append(UInt8(ascii: "-"))
        digits(tm.tm_mday, 2); out.append(UInt8(ascii: "T"))
        digits(tm.tm_hour, 2); out.append(UInt8(ascii: ":"))
        digits(tm.tm_min, 2); out.append(UInt8(ascii: ":"))
        digits(tm.tm_sec, 2)
        if fractional {
            out.append(UInt8(ascii: "."))
            digits(Int32(t.tv_nsec / 1_000_000), 3)
            out.append(UInt8(ascii: "Z"))
        } else {
            out.append(contentsOf: "+0000".utf8)
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The current wall-clock time.
    static func now() -> timespec {
        var t = timespec()
        clock_gettime(CLOCK_REALTIME, &t)
        return t
    }

    /// `s` with bytes ≤ 0x20, 0x7F and `%` as %XX, so that a field never contains a separator.
    static func percentEscaped(_ s: String) -> String {
        guard s.utf8.contains(where: { $0 <= 0x20 || $0 == 0x7F || $0 == UInt8(ascii: "%") }) else { return s }
        var out: [UInt8] = []
        out.reserveCapacity(s.utf8.count + 8)
        for b in s.utf8 {
            if b <= 0x20 || b == 0x7F || b == UInt8(ascii: "%") {
                out.append(UInt8(ascii: "%")); out.append(hex(b >> 4)); out.append(hex(b & 0xF))
            } else {
                out.append(b)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// `s` as a JSON string literal, quotes included.
    static func jsonString(_ s: String) -> String {
        guard s.utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) else {
            return "\"" + s + "\""
        }
        var out: [UInt8] = [UInt8(ascii: "\"")]
        out.reserveCapacity(s.utf8.count + 8)
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): out.append(contentsOf: #"\""#.utf8)
            case UInt8(ascii: "\\"): out.append(contentsOf: #"\\"#.utf8)
            case UInt8(ascii: "\n"): out.append(contentsOf: #"\n"#.utf8)
            case UInt8(ascii: "\r"): out.append(contentsOf: #"\r"#.utf8)
            case UInt8(ascii: "\t"): out.append(contentsOf: #"\t"#.utf8)
            case ..<0x20: out.append(contentsOf: #"\u00"#.utf8); out.append(hex(b >> 4)); out.append(hex(b & 0xF))
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
        return String(decoding: out, as: UTF8.self)
    }

    private static func hex(_ nibble: UInt8) -> UInt8 {
        nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "A") + nibble - 10
    }
}
