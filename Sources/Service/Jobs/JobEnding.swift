// JobEnding: how a job whose run threw ends, decided in one place for every runner. A cancel seen at
// the commit ends it cancelled (nothing it made is stored); a database that was unreachable, busy or
// slow sends it back to the queue with its checkpoint (the attempt counts, so a database that stays
// down fails it after `max_attempts`); anything else fails it with a message. A graceful shutdown
// releases the job instead: queued again at once, the attempt not counted.
import Foundation
import HTTP
import Logging
import Storage

enum JobEnding: Equatable {
    case cancelled, requeued, failed

    /// The ending `error` calls for (route helpers turn `StoreError`s into `HTTPError`s: both are read).
    init(after error: any Error) {
        switch error {
        case StoreError.jobCancelled: self = .cancelled
        case let e as StoreError where e.isTransient: self = .requeued
        case let e as HTTPError where e.code == APIError.jobCancelledCode: self = .cancelled
        case let e as HTTPError where e.code == APIError.databaseUnavailableCode: self = .requeued
        default: self = .failed
        }
    }
}

extension JobWorkers {
    /// Ends `job` after its run threw `error` (lease losses and shutdowns are the runners' own), with
    /// `also` (an analysis row's state) in the same transaction; returns how it ended (`requeued`
    /// becomes `failed` once the job has used its attempts).
    @discardableResult
    func end(_ job: Job, owner: String, after error: any Error, message: String,
             also: ((StoreSession, JobEnding) throws -> Void)? = nil) -> JobEnding {
        var ending = JobEnding(after: error)
        let stored = (try? store.transaction { s in
            switch ending {
            case .cancelled: try s.finishCancelledJob(id: job.id, owner: owner)
            case .requeued:
                switch try s.requeueJob(id: job.id, owner: owner, error: message) {
                case .failed: ending = .failed
                case .cancelled: ending = .cancelled
                default: break
                }
            case .failed: try s.failJob(id: job.id, owner: owner, error: message)
            }
            try also?(s, ending)
            return true
        }) ?? false
        if !stored && ending == .failed { try? store.failJob(id: job.id, owner: owner, error: message) }
        let metadata: Logger.Metadata = ["job": "\(job.id)", "error": "\(message)"]
        switch ending {
        case .failed: logger.error("job failed", metadata: metadata)
        case .requeued: logger.warning("the database was unavailable; the job is queued again", metadata: metadata)
        case .cancelled: logger.info("job cancelled before its result was stored", metadata: metadata)
        }
        return ending
    }

    /// Returns `job` to the queue on a graceful shutdown (its checkpoint kept, the attempt not
    /// counted; cancelled instead when that was asked for), with `also` given the state it is left
    /// in, in the same transaction; when that fails its lease expires and a replica resumes it as before.
    func release(_ job: Job, owner: String, also: ((StoreSession, JobState) throws -> Void)? = nil) {
        do {
            let state = try store.transaction { s in
                let state = try s.releaseJob(id: job.id, owner: owner)
                try also?(s, state)
                return state
            }
            logger.info(state == .queued ? "job released for a restart" : "job cancelled at shutdown", metadata: ["job": "\(job.id)"])
        } catch {
            logger.warning("could not release a job at shutdown; its lease will expire", metadata: ["job": "\(job.id)", "error": "\(error)"])
        }
    }
}
