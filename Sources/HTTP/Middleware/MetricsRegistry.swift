// MetricsRegistry: the process's metrics through swift-metrics, kept in a swift-prometheus
// `PrometheusCollectorRegistry` of its own and exported as Prometheus text.
//
// Each registry is independent (no `MetricsSystem.bootstrap`): a test process runs many servers,
// each with its own counts. Code elsewhere records through `factory` (swift-metrics `Counter`,
// `Recorder`, `Timer` with `factory:`), and its metrics appear in `prometheusText()`.

import CoreMetrics
import Metrics
import Prometheus
import Synchronization

/// Request counters by (method, route, status), latency histograms by (method, route), refused
/// connections by reason, and whatever else is recorded through `factory`.
public final class MetricsRegistry: Sendable {
    /// `http_request_duration_seconds` bucket upper bounds, in seconds.
    public static let buckets: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
    /// `pfc_predict_batch_rows` bucket upper bounds (rows in one merged prediction batch): 1, 2, 4, … 1024.
    public static let batchRowBuckets: [Double] = (0...10).map { Double(1 << $0) }
    /// `pfc_predict_queue_delay_seconds` bucket upper bounds: 25 µs to 100 ms (a batch forms in about a millisecond).
    public static let queueDelayBuckets: [Duration] = [
        .microseconds(25), .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500),
        .milliseconds(1), .microseconds(2500), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(100),
    ]
    /// Request methods counted under their own name; any other token is counted as "OTHER", so a
    /// client cannot grow the label set without bound.
    static let knownMethods: Set<String> = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

    /// Where every metric lives; `prometheusText()` is its exposition.
    public let prometheus: PrometheusCollectorRegistry
    /// swift-metrics over `prometheus`, with the service's histogram buckets (`pfc_predict_batch_rows`,
    /// `pfc_predict_queue_delay_seconds`; other timers get `buckets`). Pass it as `factory:`.
    public let factory: any MetricsFactory

    struct CounterKey: Hashable { let method: String, route: String, status: Int }
    struct TimerKey: Hashable { let method: String, route: String }
    private struct Instruments { var counters: [CounterKey: Metrics.Counter] = [:]; var timers: [TimerKey: Metrics.Timer] = [:] }
    /// The instruments made so far: made once per label set, then only looked up.
    private let instruments = Mutex(Instruments())
    private let rejections = Mutex<[String: Metrics.Counter]>([:])

    /// An empty registry.
    public init() {
        let prometheus = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: prometheus)
        factory.defaultDurationHistogramBuckets = Self.buckets.map { .nanoseconds(Int64(($0 * 1e9).rounded())) }
        factory.durationHistogramBuckets["pfc_predict_queue_delay_seconds"] = Self.queueDelayBuckets
        factory.valueHistogramBuckets["pfc_predict_batch_rows"] = Self.batchRowBuckets
        self.prometheus = prometheus
        self.factory = factory
        // Listed at 0 from the start, so a dashboard sees the series before the first refusal.
        for reason in ["max_connections", "max_connections_per_address"] { _ = rejectionCounter(reason) }
    }

    static let requestsHelp = "HTTP requests by method, route template and status."
    static let durationHelp = "Time from request head to response head."
    static let rejectedHelp = "Connections refused by a server limit, by reason."

    /// Records one request.
    public func observe(method: String, route: String, status: Int, seconds: Double) {
        observe(method: method, route: route, status: status,
                nanoseconds: seconds.isFinite && seconds > 0 ? Int64(min(seconds, 1e9) * 1e9) : 0)
    }

    /// Records one request that took `nanoseconds`.
    public func observe(method: String, route: String, status: Int, nanoseconds: Int64) {
        let method = Self.knownMethods.contains(method) ? method : "OTHER"
        let (counter, timer) = instruments.withLock { s -> (Metrics.Counter, Metrics.Timer) in
            let ck = CounterKey(method: method, route: route, status: status)
            let counter: Metrics.Counter
            if let c = s.counters[ck] {
                counter = c
            } else {
                let labels = [("method", method), ("route", route), ("status", String(status))]
                counter = Counter(label: "http_requests_total", dimensions: labels,
                                  handler: prometheus.makeCounter(name: "http_requests_total", labels: labels, help: Self.requestsHelp),
                                  factory: factory)
                s.counters[ck] = counter
            }
            let tk = TimerKey(method: method, route: route)
            let timer: Metrics.Timer
            if let t = s.timers[tk] {
                timer = t
            } else {
                let labels = [("method", method), ("route", route)]
                let histogram = prometheus.makeDurationHistogram(name: "http_request_duration_seconds", labels: labels,
                                                                 buckets: Self.buckets.map { .nanoseconds(Int64(($0 * 1e9).rounded())) },
                                                                 help: Self.durationHelp)
                timer = Timer(label: "http_request_duration_seconds", dimensions: labels, handler: histogram, factory: factory)
                s.timers[tk] = timer
            }
            return (counter, timer)
        }
        counter.increment()
        timer.recordNanoseconds(nanoseconds)
    }

    private func rejectionCounter(_ reason: String) -> Metrics.Counter {
        rejections.withLock { r in
            if let c = r[reason] { return c }
            let labels = [("reason", reason)]
            let c = Counter(label: "http_connections_rejected_total", dimensions: labels,
                            handler: prometheus.makeCounter(name: "http_connections_rejected_total", labels: labels, help: Self.rejectedHelp),
                            factory: factory)
            r[reason] = c
            return c
        }
    }

    /// Records one connection the server refused, and why.
    public func countRejectedConnection(reason: String) { rejectionCounter(reason).increment() }

    /// Connections refused for `reason` so far, as exported.
    public func rejectedConnections(reason: String) -> Int {
        Int(value(of: "http_connections_rejected_total", labels: "reason=\"\(reason)\"") ?? 0)
    }

    /// The request count for one (method, route, status), as exported.
    public func requestCount(method: String, route: String, status: Int) -> Int {
        Int(value(of: "http_requests_total", labels: "method=\"\(method)\",route=\"\(route)\",status=\"\(status)\"") ?? 0)
    }

    /// The value of the sample `name{labels}` in `prometheusText()`, nil when it is not there.
    public func value(of name: String, labels: String) -> Double? {
        let prefix = labels.isEmpty ? name + " " : name + "{" + labels + "} "
        for line in prometheusText().split(separator: "\n") where line.hasPrefix(prefix) {
            return Double(line.dropFirst(prefix.count))
        }
        return nil
    }

    /// Every metric in the Prometheus text exposition format (version 0.0.4).
    public func prometheusText() -> String { prometheus.emitToString() }
}
