// Issue 15, metrics through swift-metrics + swift-prometheus: each MetricsRegistry is a registry of
// its own (no global bootstrap), swift-metrics instruments made with its factory appear in its text
// with the predict buckets, and the documented names, labels and buckets keep their exposition.

import Metrics
import Testing
@testable import HTTP

@Suite struct MetricsTests {
    /// Two services in one process (as in the test suite) count apart.
    @Test func registriesAreIndependentWithoutAGlobalBootstrap() {
        let a = MetricsRegistry(), b = MetricsRegistry()
        a.observe(method: "GET", route: "/healthz", status: 200, nanoseconds: 2_000_000)
        a.observe(method: "GET", route: "/healthz", status: 200, nanoseconds: 30_000_000)
        b.observe(method: "GET", route: "/healthz", status: 503, nanoseconds: 1)
        Counter(label: "pfc_test_total", dimensions: [("kind", "x")], factory: a.factory).increment(by: 3)
        #expect(a.requestCount(method: "GET", route: "/healthz", status: 200) == 2)
        #expect(b.requestCount(method: "GET", route: "/healthz", status: 200) == 0)
        #expect(b.requestCount(method: "GET", route: "/healthz", status: 503) == 1)
        #expect(a.value(of: "pfc_test_total", labels: #"kind="x""#) == 3)
        #expect(b.value(of: "pfc_test_total", labels: #"kind="x""#) == nil)
        // The latency histogram: the documented buckets in seconds, cumulative, with sum and count.
        let text = a.prometheusText()
        #expect(text.contains("# HELP http_requests_total HTTP requests by method, route template and status."))
        #expect(text.contains(#"http_request_duration_seconds_bucket{method="GET",route="/healthz",le="0.001"} 0"#), "\(text)")
        #expect(text.contains(#"http_request_duration_seconds_bucket{method="GET",route="/healthz",le="0.0025"} 1"#))
        #expect(text.contains(#"http_request_duration_seconds_bucket{method="GET",route="/healthz",le="0.025"} 1"#))
        #expect(text.contains(#"http_request_duration_seconds_bucket{method="GET",route="/healthz",le="0.05"} 2"#))
        #expect(text.contains(#"http_request_duration_seconds_bucket{method="GET",route="/healthz",le="+Inf"} 2"#))
        #expect(text.contains(#"http_request_duration_seconds_sum{method="GET",route="/healthz"} 0.032"#))
        #expect(text.contains(#"http_request_duration_seconds_count{method="GET",route="/healthz"} 2"#))
        #expect(text.contains(#"http_connections_rejected_total{reason="max_connections"} 0"#))
        a.countRejectedConnection(reason: "max_connections")
        #expect(a.rejectedConnections(reason: "max_connections") == 1 && b.rejectedConnections(reason: "max_connections") == 0)
    }

    /// The predict batcher's instruments get their own buckets from the factory: rows 1, 2, 4 … 1024
    /// and a queue delay in sub-millisecond steps.
    @Test func predictHistogramsUseTheirBuckets() {
        let r = MetricsRegistry()
        let rows = Recorder(label: "pfc_predict_batch_rows", factory: r.factory)
        for n in [1, 3, 64, 1000] { rows.record(n) }
        Timer(label: "pfc_predict_queue_delay_seconds", factory: r.factory).recordNanoseconds(40_000)
        let text = r.prometheusText()
        for (le, n) in [("1.0", 1), ("2.0", 1), ("4.0", 2), ("64.0", 3), ("512.0", 3), ("1024.0", 4)] {
            #expect(text.contains("pfc_predict_batch_rows_bucket{le=\"\(le)\"} \(n)"), "le \(le): \(text)")
        }
        #expect(text.contains(#"pfc_predict_queue_delay_seconds_bucket{le="0.000025"} 0"#), "\(text)")
        #expect(text.contains(#"pfc_predict_queue_delay_seconds_bucket{le="0.00005"} 1"#))
        #expect(text.contains(#"pfc_predict_queue_delay_seconds_bucket{le="0.1"} 1"#))
    }

    /// A client cannot grow the label set: methods other than the standard ones count as OTHER,
    /// and label values are escaped.
    @Test func unknownMethodsShareOneLabelAndValuesAreEscaped() {
        let r = MetricsRegistry()
        for i in 0..<50 { r.observe(method: "M\(i)", route: "unmatched", status: 405, nanoseconds: 1) }
        r.observe(method: "GET", route: #"/a"b\c"#, status: 200, nanoseconds: 1)
        #expect(r.requestCount(method: "OTHER", route: "unmatched", status: 405) == 50)
        let text = r.prometheusText()
        #expect(!text.contains("M7"))
        #expect(text.contains(#"route="/a\"b\\c""#), "\(text)")
    }
}
