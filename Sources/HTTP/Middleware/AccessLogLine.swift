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
        var out: [UInt8] = []
        var clock = AccessLogClock()
        write(format, label: label, level: level, into: &out, clock: &clock)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends the line in `format` (newline included) to `out`: bytes only, no String made.
    func write(_ format: AccessLogFormat, label: String, level: String, into out: inout [UInt8], clock: inout AccessLogClock) {
        switch format {
        case .text: writeText(label: label, level: level, into: &out, clock: &clock)
        case .json: writeJSON(into: &out, clock: &clock)
        }
    }

    /// The text layout: the fields sorted by name as swift-log printed them, then the message.
    /// Bytes a terminal or a log parser would take for a separator (controls, space) are %-escaped.
    func writeText(label: String, level: String, into out: inout [UInt8], clock: inout AccessLogClock) {
        clock.appendSecond(time.tv_sec, to: &out)
        out.append(contentsOf: "+0000 ".utf8)
        out.append(contentsOf: level.utf8); out.append(0x20)
        out.append(contentsOf: label.utf8)
        out.append(contentsOf: ": bytes=".utf8)
        if let bytesOut { Self.appendDecimal(bytesOut, to: &out) } else { out.append(UInt8(ascii: "-")) }
        out.append(contentsOf: " ms=".utf8)
        appendMilliseconds(to: &out)
        out.append(contentsOf: " remote=".utf8)
        Self.appendPercentEscaped(peer, to: &out)
        out.append(contentsOf: " request-id=".utf8)
        if requestID.isEmpty { out.append(UInt8(ascii: "-")) } else { Self.appendPercentEscaped(requestID, to: &out) }
        out.append(contentsOf: " route=".utf8)
        Self.appendPercentEscaped(route ?? "-", to: &out)
        out.append(contentsOf: " [HTTP] ".utf8)
        out.append(contentsOf: method.utf8); out.append(0x20)
        Self.appendPercentEscaped(path, to: &out); out.append(0x20)
        Self.appendDecimal(status, to: &out)
        out.append(0x0A)
    }

    /// One JSON object and a newline; `route` and `bytes_out` may be null.
    func writeJSON(into out: inout [UInt8], clock: inout AccessLogClock) {
        out.append(contentsOf: #"{"time":""#.utf8)
        clock.appendSecond(time.tv_sec, to: &out)
        out.append(UInt8(ascii: "."))
        Self.appendDigits(Int(time.tv_nsec / 1_000_000), count: 3, to: &out)
        out.append(contentsOf: #"Z","request_id":"#.utf8)
        Self.appendJSONString(requestID, to: &out)
        out.append(contentsOf: #","method":"#.utf8)
        Self.appendJSONString(method, to: &out)
        out.append(contentsOf: #","route":"#.utf8)
        if let route { Self.appendJSONString(route, to: &out) } else { out.append(contentsOf: "null".utf8) }
        out.append(contentsOf: #","path":"#.utf8)
        Self.appendJSONString(path, to: &out)
        out.append(contentsOf: #","status":"#.utf8)
        Self.appendDecimal(status, to: &out)
        out.append(contentsOf: #","bytes_out":"#.utf8)
        if let bytesOut { Self.appendDecimal(bytesOut, to: &out) } else { out.append(contentsOf: "null".utf8) }
        out.append(contentsOf: #","latency_ms":"#.utf8)
        appendMilliseconds(to: &out)
        out.append(contentsOf: #","peer":"#.utf8)
        Self.appendJSONString(peer, to: &out)
        out.append(contentsOf: "}\n".utf8)
    }

    /// The latency in milliseconds with three decimals ("0.120", "12.034").
    var milliseconds: String {
        var out: [UInt8] = []
        appendMilliseconds(to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    func appendMilliseconds(to out: inout [UInt8]) {
        let us = max(0, latencyMicroseconds)
        Self.appendDecimal(Int(us / 1000), to: &out)
        out.append(UInt8(ascii: "."))
        Self.appendDigits(Int(us % 1000), count: 3, to: &out)
    }

    /// `v` (≥ 0) in decimal.
    static func appendDecimal(_ v: Int, to out: inout [UInt8]) {
        guard v > 0 else { out.append(UInt8(ascii: "0")); return }
        var n = 0, t = v
        while t > 0 { n += 1; t /= 10 }
        appendDigits(v, count: n, to: &out)
    }

    /// The last `count` decimal digits of `v` (≥ 0), zero-padded.
    static func appendDigits(_ v: Int, count: Int, to out: inout [UInt8]) {
        var div = 1
        for _ in 1..<max(count, 1) { div *= 10 }
        var v = v
        while div > 0 { out.append(UInt8(ascii: "0") + UInt8(v / div % 10)); v %= div; div /= 10 }
    }

    /// `2026-12-01T10:22:02+0000` (swift-log's layout, in UTC), or `2026-12-01T10:22:02.123Z`.
    static func timestamp(_ t: timespec, fractional: Bool) -> String {
        var out: [UInt8] = []
        var clock = AccessLogClock()
        clock.appendSecond(t.tv_sec, to: &out)
        if fractional {
            out.append(UInt8(ascii: "."))
            appendDigits(Int(t.tv_nsec / 1_000_000), count: 3, to: &out)
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
        var out: [UInt8] = []
        appendPercentEscaped(s, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    static func appendPercentEscaped(_ s: String, to out: inout [UInt8]) {
        for b in s.utf8 {
            if b <= 0x20 || b == 0x7F || b == UInt8(ascii: "%") {
                out.append(UInt8(ascii: "%")); out.append(hex(b >> 4)); out.append(hex(b & 0xF))
            } else {
                out.append(b)
            }
        }
    }

    /// `s` as a JSON string literal, quotes included.
    static func jsonString(_ s: String) -> String {
        var out: [UInt8] = []
        appendJSONString(s, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    static func appendJSONString(_ s: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
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
    }

    private static func hex(_ nibble: UInt8) -> UInt8 {
        nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "A") + nibble - 10
    }
}

/// `2026-12-01T10:22:02` for one second, formatted (gmtime_r) only when the second changes.
struct AccessLogClock {
    private var second = -1
    private var text: (UInt64, UInt64, UInt32, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0, 0)  // 19 bytes

    /// Appends `yyyy-mm-ddThh:mm:ss` (UTC) of `seconds` since the epoch.
    mutating func appendSecond(_ seconds: time_t, to out: inout [UInt8]) {
        if Int(seconds) != second { format(seconds) }
        withUnsafeBytes(of: &text) { out.append(contentsOf: $0.prefix(19)) }
    }

    private mutating func format(_ seconds: time_t) {
        var t = seconds
        var tm = tm()
        gmtime_r(&t, &tm)
        var b: [UInt8] = []
        b.reserveCapacity(19)
        AccessLogLine.appendDigits(Int(tm.tm_year) + 1900, count: 4, to: &b); b.append(UInt8(ascii: "-"))
        AccessLogLine.appendDigits(Int(tm.tm_mon) + 1, count: 2, to: &b); b.append(UInt8(ascii: "-"))
        AccessLogLine.appendDigits(Int(tm.tm_mday), count: 2, to: &b); b.append(UInt8(ascii: "T"))
        AccessLogLine.appendDigits(Int(tm.tm_hour), count: 2, to: &b); b.append(UInt8(ascii: ":"))
        AccessLogLine.appendDigits(Int(tm.tm_min), count: 2, to: &b); b.append(UInt8(ascii: ":"))
        AccessLogLine.appendDigits(Int(tm.tm_sec), count: 2, to: &b)
        withUnsafeMutableBytes(of: &text) { raw in
            for (i, byte) in b.prefix(19).enumerated() { raw[i] = byte }
        }
        second = Int(seconds)
    }
}
