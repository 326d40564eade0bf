// JobEventHub: one per process. A job's changes (progress, state, result) are published here once
// and every subscriber of that job gets them from memory, in revision order; a late subscriber
// first gets the current state.
//
// Where changes come from: the store's `jobChanges` feed (every committed job UPDATE in this
// process, SQLite and PostgreSQL), and on PostgreSQL the `pfc_job_events` NOTIFYs of other
// replicas (`receiveNotification`, fed by a `PGListener`; payload `<job id>:<revision>`). For a
// job with subscribers the hub reads the row ONCE per change on its own serial queue (never per
// subscriber), encodes the SSE event once, and hands the same bytes to every subscriber. Jobs
// nobody follows cost a dictionary lookup. After the listen connection was lost, `resynchronize()`
// re-reads every followed job (what changed meanwhile is then sent as one event).
//
// Event ids are the job's `revision` (bumped by every UPDATE of the row), so a client that
// reconnects with `Last-Event-ID: r` gets nothing it has already seen.
import Dispatch
import Foundation
import HTTP
import Logging
import Storage
import Synchronization

final class JobEventHub: Sendable {
    /// One encoded event: `progress` while the job runs, `end` (terminal) once.
    struct Event: Sendable {
        let revision: Int
        let terminal: Bool
        /// The SSE bytes (`id:`, `event:`, `data:` with the job's JSON).
        let bytes: [UInt8]
    }

    /// A subscriber's handle; `cancel()` stops delivery (idempotent).
    final class Subscription: Sendable {
        private let cancelAction: @Sendable () -> Void
        private let cancelled = Atomic<Bool>(false)
        init(cancel: @escaping @Sendable () -> Void) { cancelAction = cancel }
        func cancel() {
            if cancelled.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged { cancelAction() }
        }
    }

    private struct Followed {
        var tenantID: String
        var subscribers: [Int: @Sendable (Event) -> Void] = [:]
        /// The last event published (what a late subscriber gets first).
        var last: Event?
        var lastData: String?
        /// The highest revision read (or announced and read).
        var knownRevision = -1
        var readScheduled = false
    }

    private struct State {
        var jobs: [String: Followed] = [:]
        var nextToken = 0
        var reads = 0
        var published = 0
    }

    private let store: any Store
    private let logger: Logger
    private let queue = DispatchQueue(label: "pfc.job-events")
    private let state = Mutex(State())

    init(store: any Store, logger: Logger) {
        self.store = store
        self.logger = logger
        store.jobChanges.observe { [weak self] ids in
            guard let self else { return }
            for id in ids { self.jobChanged(id: id, revision: nil) }
        }
    }

    // MARK: subscribing

    /// Follows `job` (as just read by the caller, who checked the tenant): `sink` gets the current
    /// state first, unless `lastEventID` says the client has it, then every change in order, the
    /// terminal `end` event last. `sink` runs on the hub's queue: it must not block.
    func subscribe(_ job: Job, lastEventID: Int?, sink: @escaping @Sendable (Event) -> Void) -> Subscription {
        let token = state.withLock { s -> Int in s.nextToken += 1; return s.nextToken }
        let id = job.id
        // Nothing the client already has (Last-Event-ID), except the end that closes the stream.
        let deliver: @Sendable (Event) -> Void
        if let seen = lastEventID {
            deliver = { event in if event.terminal || event.revision > seen { sink(event) } }
        } else {
            deliver = sink
        }
        queue.async { [self] in
            let (initial, readAgain) = state.withLock { s -> (Event, Bool) in
                var f = s.jobs[id] ?? Followed(tenantID: job.tenantID)
                let first = s.jobs[id] == nil
                if f.last == nil {
                    let event = Self.encode(job)
                    f.last = event.0
                    f.lastData = event.1
                    f.knownRevision = job.revision
                }
                f.subscribers[token] = deliver
                s.jobs[id] = f
                // The caller's read may be newer than what the hub published: the newcomer starts
                // where the others are, and the read below publishes the newer state to all of them.
                return (f.last!, first || job.revision > f.knownRevision)
            }
            deliver(initial)
            // Changes between the caller's read and now were not followed yet: read once more.
            if readAgain && !initial.terminal { scheduleRead(id) }
        }
        return Subscription { [self] in
            queue.async { [self] in
                state.withLock { s in
                    s.jobs[id]?.subscribers[token] = nil
                    if s.jobs[id]?.subscribers.isEmpty == true { s.jobs[id] = nil }
                }
            }
        }
    }

    // MARK: changes

    /// A NOTIFY payload from another (or this) replica: `<job id>:<revision>`.
    func receiveNotification(_ payload: String) {
        guard let colon = payload.lastIndex(of: ":") else { return }
        let id = String(payload[..<colon])
        jobChanged(id: id, revision: Int(payload[payload.index(after: colon)...]))
    }

    /// The listen connection was re-made: re-read every followed job.
    func resynchronize() {
        let ids = state.withLock { Array($0.jobs.keys) }
        for id in ids { jobChanged(id: id, revision: nil) }
    }

    /// Job `id` changed (to `revision` when known): read it once, unless nobody follows it or
    /// that revision was read already.
    func jobChanged(id: String, revision: Int?) {
        let schedule = state.withLock { s -> Bool in
            guard var f = s.jobs[id] else { return false }
            if let revision, revision <= f.knownRevision { return false }
            if f.readScheduled { return false }
            f.readScheduled = true
            s.jobs[id] = f
            return true
        }
        if schedule { queue.async { [self] in read(id) } }
    }

    private func scheduleRead(_ id: String) {
        let go = state.withLock { s -> Bool in
            guard var f = s.jobs[id], !f.readScheduled else { return false }
            f.readScheduled = true
            s.jobs[id] = f
            return true
        }
        if go { queue.async { [self] in read(id) } }
    }

    /// On the hub's queue: reads the row and publishes it if it changed.
    private func read(_ id: String) {
        guard let tenant = state.withLock({ s -> String? in
            s.jobs[id]?.readScheduled = false
            return s.jobs[id]?.tenantID
        }) else { return }
        let job: Job
        do {
            job = try store.job(id: id, tenantID: tenant)
        } catch StoreError.notFound {
            return  // deleted with its model: its streams end with their heartbeats' failure or the client
        } catch {
            // Transient (busy pool, restart): try again shortly; the streams' heartbeats go on.
            logger.debug("event hub could not read a job; retrying", metadata: ["job": "\(id)", "error": "\(error)"])
            queue.asyncAfter(deadline: .now() + .milliseconds(500)) { [self] in scheduleRead(id) }
            return
        }
        publish(job)
    }

    private func publish(_ job: Job) {
        let sinks = state.withLock { s -> [@Sendable (Event) -> Void] in
            s.reads += 1
            guard var f = s.jobs[job.id], job.revision > f.knownRevision else { return [] }
            f.knownRevision = job.revision
            let (event, data) = Self.encode(job)
            // A heartbeat that changed nothing the API shows is not an event.
            if data == f.lastData && !event.terminal { s.jobs[job.id] = f; return [] }
            f.last = event
            f.lastData = data
            s.jobs[job.id] = f
            s.published += 1
            return Array(f.subscribers.values)
        }
        guard let event = sinks.isEmpty ? nil : state.withLock({ $0.jobs[job.id]?.last }) else { return }
        for sink in sinks { sink(event) }
    }

    private static func encode(_ job: Job) -> (Event, String) {
        let data = (try? JSONCoding.encoder.encode(JobDTO(job: job))).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        let terminal = job.state.isTerminal
        let bytes = SSEWriter.encode(event: terminal ? "end" : "progress", data: data, id: String(job.revision))
        return (Event(revision: job.revision, terminal: terminal, bytes: bytes), data)
    }

    // MARK: figures

    /// Jobs followed now, rows read and events published since start (for /metrics and tests).
    var figures: (followed: Int, subscribers: Int, reads: Int, published: Int) {
        state.withLock { s in (s.jobs.count, s.jobs.values.reduce(0) { $0 + $1.subscribers.count }, s.reads, s.published) }
    }
}
