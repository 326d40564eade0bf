// JobRoutes: job status, live progress as Server-Sent Events, and cancellation.
import Foundation
import HTTP
import PFC
import Storage

extension PFCService {
    func registerJobs(_ r: inout Router) {
        // The tenant's jobs, oldest first, paged like the other lists; filters combine.
        r.get("/v1/jobs") { [store] request, ctx in
            let tenant = try ctx.tenantID(), page = try Pagination(request)
            let state = try request.queryValue("state").map { v -> JobState in
                guard let s = JobState(rawValue: v) else {
                    throw APIError.badRequest("state must be one of \(JobState.allCases.map(\.rawValue).joined(separator: ", ")), not \(v)")
                }
                return s
            }
            let kind = try request.queryValue("kind").map { v -> String in
                guard JobKind(rawValue: v) != nil else {
                    throw APIError.badRequest("kind must be one of \(JobKind.allCases.map(\.rawValue).joined(separator: ", ")), not \(v)")
                }
                return v
            }
            let modelID = try request.queryValue("model_id").map { v -> String in
                if v.utf8.contains(0) { throw APIError.badRequest("model_id must not contain the NUL character (U+0000)") }
                return v
            }
            // Bounded by bytes too: an evaluate job's result can hold a confusion matrix of megabytes.
            let result = try storeCall {
                try BoundedPage.read(limit: page.limit, offset: page.offset, size: { $0.storedBytes }) { p in
                    try store.jobs(tenantID: tenant, state: state, modelID: modelID, kind: kind, page: p)
                }
            }
            return try JSONCoding.response(ListPage(items: result.items.map { JobDTO(job: $0) }, nextOffset: result.nextOffset))
        }
        r.get("/v1/jobs/{id}") { [store] request, ctx in
            let tenant = try ctx.tenantID()
            return try JSONCoding.response(JobDTO(job: try storeCall { try store.job(id: try request.pathParameter("id"), tenantID: tenant) }))
        }
        // The learning curve of a train or task job: one entry per finished epoch (from its result once
        // it ended; the progress events carry the running epoch's figures meanwhile).
        r.get("/v1/jobs/{id}/metrics") { [store] request, ctx in
            let tenant = try ctx.tenantID()
            let job = try storeCall { try store.job(id: try request.pathParameter("id"), tenantID: tenant) }
            guard let kind = job.jobKind, kind == .train || kind == .task else {
                throw APIError.conflict("job \(job.id) is a \(job.kind) job; only train and task jobs have learning curves")
            }
            var body = JobMetricsDTO(jobID: job.id, kind: job.kind, state: job.state.rawValue, modelVersion: nil, history: [])
            if case .training(let r)? = JobResult(kind: kind, column: job.result) {
                body.modelVersion = r.modelVersion
                body.history = r.metrics.history ?? []
                body.bestEpoch = r.metrics.bestEpoch
                body.stoppedEarly = r.metrics.stoppedEarly
            }
            return try JSONCoding.response(body)
        }
        r.delete("/v1/jobs/{id}") { [store, workers] request, ctx in
            let tenant = try ctx.tenantID()
            let job = try storeCall { try store.cancelJob(id: try request.pathParameter("id"), tenantID: tenant) }
            workers.wake()
            return try JSONCoding.response(JobDTO(job: job))
        }
        // A push stream fed by the event hub: the handler returns at once, no thread is held
        // while the stream is open, and a change is read from the database once per process.
        let heartbeat = Self.heartbeatInterval(configuration.limits.eventStreamHeartbeatSeconds)
        let buffer = max(4096, configuration.limits.eventStreamBufferBytes)
        r.get("/v1/jobs/{id}/events") { [store, eventStreams, jobEvents] request, ctx in
            let tenant = try ctx.tenantID(), id = try request.pathParameter("id")
            let job = try storeCall { try store.job(id: id, tenantID: tenant) }
            // Event ids are revisions; anything else (or a number out of range) is ignored.
            let lastEventID = request.headers["Last-Event-ID"].flatMap { Int($0.trimmingCharacters(in: .whitespaces)) }
            let slot = try eventStreams.acquire(tenantID: tenant)  // freed when the stream closes
            let stream = SSEWriter.pushStream(heartbeat: heartbeat, maxBufferedBytes: buffer)
            let subscription = jobEvents.subscribe(job, lastEventID: lastEventID) { event in
                stream.write(event.bytes)
                if event.terminal { stream.finish() }
            }
            stream.onClose { _ in
                subscription.cancel()
                withExtendedLifetime(slot) {}
            }
            return SSEWriter.pushResponse(stream)
        }
    }

    /// The heartbeat period from seconds (clamped to 0.05 s … 1 h).
    static func heartbeatInterval(_ seconds: Double) -> Duration {
        let s = seconds.isFinite ? min(max(seconds, 0.05), 3600) : 15
        return .milliseconds(Int64((s * 1000).rounded()))
    }
}

/// `GET /v1/jobs/{id}/metrics`: a training job's per-epoch history.
struct JobMetricsDTO: Encodable {
    var jobID: String
    var kind: String
    var state: String
    var modelVersion: Int?
    var history: [EpochSummary]
    /// The epoch whose weights the version kept (best validation loss), and whether early stopping ended the run.
    var bestEpoch: Int? = nil
    var stoppedEarly: Bool? = nil
    enum CodingKeys: String, CodingKey {
        case kind, state, history
        case jobID = "job_id", modelVersion = "model_version", bestEpoch = "best_epoch", stoppedEarly = "stopped_early"
    }
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(jobID, forKey: .jobID); try c.encode(kind, forKey: .kind); try c.encode(state, forKey: .state)
        try c.encode(modelVersion, forKey: .modelVersion); try c.encode(history, forKey: .history)
        try c.encode(bestEpoch, forKey: .bestEpoch); try c.encode(stoppedEarly, forKey: .stoppedEarly)
    }
}
