// OpsRoutes: /healthz, /readyz, /metrics and /openapi.yaml (no API key).
import Foundation
import HTTP
import Storage

/// The operations endpoints: need the store (readiness, job counts), the metrics and the gauges of
/// the workers, event streams, rate limiter, access log and quotas.
struct OpsController: RouteCollection {
    let store: any Store
    let metrics: MetricsRegistry
    /// `/healthz` answers 503 "saturated" once a request has waited this long for a handler thread.
    let saturationSeconds: Double
    let workers: JobWorkers
    let eventStreams: EventStreamSlots
    let rateLimiter: RateLimiter?
    let accessLog: AccessLogWriter?
    let quotas: TenantQuotas

    func register(on r: inout Router) {
        // On the connection queue: never blocks, and answers even when every handler thread is busy.
        // 503 "saturated" once a request has waited longer than `saturationSeconds` for a handler
        // thread: the process is up but cannot serve (a load balancer should look elsewhere).
        let saturation = Duration.milliseconds(Int64((saturationSeconds * 1000).rounded()))
        r.get("/healthz", options: RouteOptions(execution: .connectionQueue)) { _, ctx in
            if let server = ctx.server, server.handlerQueueDelay > saturation {
                let waited = Double(server.handlerQueueDelay.components.seconds) + Double(server.handlerQueueDelay.components.attoseconds) / 1e18
                var r = Response.json(#"{"status":"saturated","handler_queue_delay_seconds":\#(String(format: "%.3f", waited))}"#,
                                      status: .serviceUnavailable)
                r.headers.replaceOrAdd(name: "Retry-After", value: "1")
                return r
            }
            return Response.json(#"{"status":"ok"}"#)
        }
        r.get("/readyz") { [store] _, _ in
            let report: MigrationReport
            do { report = try store.migrationStatus() } catch {
                throw HTTPError(.serviceUnavailable, message: "database not ready: \(error)")
            }
            guard report.pending.isEmpty else {
                throw HTTPError(.serviceUnavailable, message: "\(report.pending.count) migration(s) pending; run `pfc-server migrate`")
            }
            return try JSONCoding.response(ReadyDTO(database: store.backend.rawValue, migrations: report.previouslyApplied.count))
        }
        r.get("/metrics") { [self] _, ctx in
            var text = metrics.prometheusText()
            text += (try? jobStateMetrics()) ?? ""
            text += eventStreamMetrics()
            text += workers.sparsity.prometheusText()
            if let server = ctx.server {
                let d = server.handlerQueueDelay.components
                text += "# HELP pfc_handler_queue_delay_seconds How long the oldest request has waited for a handler thread.\n"
                text += "# TYPE pfc_handler_queue_delay_seconds gauge\npfc_handler_queue_delay_seconds \(Double(d.seconds) + Double(d.attoseconds) / 1e18)\n"
            }
            text += rateLimiter?.prometheusText() ?? ""
            text += accessLog?.prometheusText() ?? ""
            text += quotas.prometheusText()
            var resp = Response.text(text)
            resp.headers.replaceOrAdd(name: "Content-Type", value: "text/plain; version=0.0.4; charset=utf-8")
            return resp
        }
        r.get("/openapi.yaml") { _, _ in
            var resp = Response.text(OpenAPIDocument.yaml)
            resp.headers.replaceOrAdd(name: "Content-Type", value: "application/yaml")
            return resp
        }
    }

    func eventStreamMetrics() -> String {
        var text = "# HELP pfc_event_streams_open Job event streams open on this process.\n# TYPE pfc_event_streams_open gauge\n"
        text += "pfc_event_streams_open \(eventStreams.openCount)\n"
        text += "# HELP pfc_event_streams_refused_total Event streams refused by limit (tenant: per-tenant cap, server: total cap).\n"
        text += "# TYPE pfc_event_streams_refused_total counter\n"
        let refused = eventStreams.refused.withLock { $0 }
        for reason in ["tenant", "server"] { text += "pfc_event_streams_refused_total{reason=\"\(reason)\"} \(refused[reason] ?? 0)\n" }
        return text
    }

    func jobStateMetrics() throws -> String {
        let counts = try store.jobCountsByState()
        var text = "# HELP pfc_jobs Jobs by state.\n# TYPE pfc_jobs gauge\n"
        for state in JobState.allCases { text += "pfc_jobs{state=\"\(state.rawValue)\"} \(counts[state] ?? 0)\n" }
        text += "# HELP pfc_training_examples_per_second Throughput of the last training step on this process.\n"
        text += "# TYPE pfc_training_examples_per_second gauge\npfc_training_examples_per_second \(workers.lastExamplesPerSecond)\n"
        return text
    }
}

/// `GET /readyz`.
struct ReadyDTO: Encodable {
    var status = "ready"
    var database: String
    var migrations: Int
}
