// MetricsRegistry: thread-safe request counters and latency histograms, exportable as Prometheus text.

import Synchronization

/// Request counters by (method, route, status) and latency histograms by (method, route).
public final class MetricsRegistry: Sendable {
    /// Histogram bucket upper bounds, in seconds.
    public static let buckets: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

    struct CounterKey: Hashable { let method: String, route: String, status: Int }
    struct HistogramKey: Hashable { let method: String, route: String }
    struct Histogram { var counts = [Int](repeating: 0, count: MetricsRegistry.buckets.count); var sum = 0.0; var count = 0 }

    private let state = Mutex<(counters: [CounterKey: Int], histograms: [HistogramKey: Histogram])>(([:], [:]))
    /// Connections the server refused, by reason ("max_connections", "max_connections_per_address", …).
    private let rejections = Mutex<[String: Int]>(["max_connections": 0, "max_connections_per_address": 0])

    /// An empty registry.
    public init() {}

    /// Records one request.
    public func observe(method: String, route: String, status: Int, seconds: Double) {
        state.withLock { s in
            s.counters[CounterKey(method: method, route: route, status: status), default: 0] += 1
            let key = HistogramKey(method: method, route: route)
            var h = s.histograms[key] ?? Histogram()
            if let i = Self.buckets.firstIndex(where: { seconds <= $0 }) { h.counts[i] += 1 }
            h.sum += seconds
            h.count += 1
            s.histograms[key] = h
        }
    }

    /// Records one connection the server refused, and why.
    public func countRejectedConnection(reason: String) {
        rejections.withLock { $0[reason, default: 0] += 1 }
    }

    /// Connections refused for `reason` so far.
    public func rejectedConnections(reason: String) -> Int { rejections.withLock { $0[reason] ?? 0 } }

    /// The request count for one (method, route, status).
    public func requestCount(method: String, route: String, status: Int) -> Int {
        state.withLock { $0.counters[CounterKey(method: method, route: route, status: status)] ?? 0 }
    }

    /// Every metric in the Prometheus text exposition format (version 0.0.4).
    public func prometheusText() -> String {
        let (counters, histograms) = state.withLock { ($0.counters, $0.histograms) }
        var out = "# HELP http_requests_total HTTP requests by method, route template and status.\n"
        out += "# TYPE http_requests_total counter\n"
        for (k, v) in counters.sorted(by: { ($0.key.route, $0.key.method, $0.key.status) < ($1.key.route, $1.key.method, $1.key.status) }) {
            out += "http_requests_total{method=\(Self.label(k.method)),route=\(Self.label(k.route)),status=\"\(k.status)\"} \(v)\n"
        }
        out += "# HELP http_request_duration_seconds Time from request head to response head.\n"
        out += "# TYPE http_request_duration_seconds histogram\n"
        for (k, h) in histograms.sorted(by: { ($0.key.route, $0.key.method) < ($1.key.route, $1.key.method) }) {
            let labels = "method=\(Self.label(k.method)),route=\(Self.label(k.route))"
            var cumulative = 0
            for (i, bound) in Self.buckets.enumerated() {
                cumulative += h.counts[i]
                out += "http_request_duration_seconds_bucket{\(labels),le=\"\(bound)\"} \(cumulative)\n"
            }
            out += "http_request_duration_seconds_bucket{\(labels),le=\"+Inf\"} \(h.count)\n"
            out += "http_request_duration_seconds_sum{\(labels)} \(h.sum)\n"
            out += "http_request_duration_seconds_count{\(labels)} \(h.count)\n"
        }
        out += "# HELP http_connections_rejected_total Connections refused by a server limit, by reason.\n"
        out += "# TYPE http_connections_rejected_total counter\n"
        for (reason, n) in rejections.withLock({ $0 }).sorted(by: { $0.key < $1.key }) {
            out += "http_connections_rejected_total{reason=\(Self.label(reason))} \(n)\n"
        }
        return out
    }

    private static func label(_ s: String) -> String {
        "\"" + s.replacingBackslashesQuotesNewlines() + "\""
    }
}

extension String {
    fileprivate func replacingBackslashesQuotesNewlines() -> String {
        var out = ""
        for c in self {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(c)
            }
        }
        return out
    }
}
