// JobRoutes: job status, live progress as Server-Sent Events, and cancellation.
import Foundation
import HTTP
import Storage

extension PFCService {
    func registerJobs(_ r: inout Router) {
        r.get("/v1/jobs/{id}") { [store] request, ctx in
            let tenant = try ctx.tenantID()
            return try JSONCoding.response(JobDTO(job: try storeCall { try store.job(id: try request.pathParameter("id"), tenantID: tenant) }))
        }
        r.delete("/v1/jobs/{id}") { [store, workers] request, ctx in
            let tenant = try ctx.tenantID()
            let job = try storeCall { try store.cancelJob(id: try request.pathParameter("id"), tenantID: tenant) }
            workers.wake()
            return try JSONCoding.response(JobDTO(job: job))
        }
        // Polls the job row, so progress from a worker on any replica reaches the client.
        r.get("/v1/jobs/{id}/events") { [store, eventStreams] request, ctx in
            let tenant = try ctx.tenantID(), id = try request.pathParameter("id")
            let first = try storeCall { try store.job(id: id, tenantID: tenant) }
            let slot = try eventStreams.acquire(tenantID: tenant)  // freed with the stream's closure
            return SSEWriter.response(heartbeat: .seconds(15)) { sse in
                try withExtendedLifetime(slot) { try Self.follow(first, store: store, tenantID: tenant, sse: sse) }
            }
        }
    }

    /// Sends the job's progress until it ends or the client goes away.
    static func follow(_ first: Job, store: any Store, tenantID: String, sse: SSEWriter) throws {
        var job = first
        var lastSent = ""
        while true {
            let data = String(decoding: try JSONCoding.encoder.encode(JobDTO(job: job)), as: UTF8.self)
            if job.state.isTerminal {
                try sse.send(event: "end", data: data, id: job.id)
                return
            }
            if data != lastSent {
                try sse.send(event: "progress", data: data)
                lastSent = data
            }
            Thread.sleep(forTimeInterval: 0.25)
            guard sse.isConnected else { return }
            job = try pollJob(store: store, id: first.id, tenantID: tenantID, sse: sse)
        }
    }

    /// Reads the job for the event stream; a transient database error (busy pool, restart) is
    /// retried for up to 30 s with a comment to the client instead of cutting the stream.
    static func pollJob(store: any Store, id: String, tenantID: String, sse: SSEWriter) throws -> Job {
        var attempts = 0
        while true {
            do { return try store.job(id: id, tenantID: tenantID) } catch let error as StoreError {
                switch error {
                case .connectionFailed, .poolExhausted, .timeout, .serializationFailure, .database:
                    attempts += 1
                    if attempts > 60 { throw error }
                    try sse.comment("database busy, retrying")
                    Thread.sleep(forTimeInterval: 0.5)
                default: throw error
                }
            }
        }
    }
}
