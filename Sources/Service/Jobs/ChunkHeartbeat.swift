// ChunkHeartbeat: a job's lease kept, and a cancel request or shutdown heard, between the chunks of
// its forward passes (evaluate and forget jobs, and the accuracy-matrix row of a task job): a
// heartbeat, with the job's progress when it has one, at most every `heartbeatSeconds`.
import Foundation
import HTTP
import Logging
import Storage

extension JobWorkers {
    /// Runs the body of a job that stops through `EvaluationStop` (evaluate and forget jobs) and
    /// records how it ended: cancelled; lease lost (another worker owns it, nothing written);
    /// shutdown (nothing written: released to the queue, it runs again); or as `end` decides
    /// (failed with `message(error)` when it gives one, else the error's own text).
    func runChunkedJob(_ job: Job, owner: String, _ body: () throws -> Void, message: (any Error) -> String? = { _ in nil }) {
        do {
            try body()
        } catch EvaluationStop.cancelled {
            try? store.finishCancelledJob(id: job.id, owner: owner)
        } catch EvaluationStop.leaseLost, StoreError.leaseLost {
            logger.warning("lost the lease of a job; another worker owns it now", metadata: ["job": "\(job.id)"])
        } catch EvaluationStop.shutdown {
            release(job, owner: owner)
        } catch {
            end(job, owner: owner, after: error, message: message(error) ?? (error as? HTTPError)?.message ?? "\(error)")
        }
    }
}

struct ChunkHeartbeat {
    let workers: JobWorkers
    let jobID: String
    let owner: String
    private var lastBeat: ContinuousClock.Instant
    private let interval: Duration

    /// `atOnce`: the first `beat` heartbeats (the job's first progress); otherwise one interval from now.
    init(workers: JobWorkers, jobID: String, owner: String, atOnce: Bool = true) {
        self.workers = workers
        self.jobID = jobID
        self.owner = owner
        interval = .milliseconds(Int(workers.configuration.heartbeatSeconds * 1000))
        lastBeat = atOnce ? ContinuousClock.now - .seconds(3600) : ContinuousClock.now
    }

    /// Throws `EvaluationStop.shutdown` once the workers stop, `.cancelled` when a cancel was
    /// requested and `.leaseLost` when another worker owns the job; any other heartbeat failure only
    /// logs. `force`: heartbeat now (the last chunk's progress).
    mutating func beat(force: Bool = false, progress: () throws -> JSONColumn? = { nil }) throws {
        if workers.isStopping { throw EvaluationStop.shutdown }
        let now = ContinuousClock.now
        guard force || now - lastBeat >= interval else { return }
        lastBeat = now
        do {
            let answer = try workers.store.heartbeat(jobID: jobID, owner: owner, progress: try progress(),
                                                     leaseDuration: workers.configuration.leaseSeconds)
            if answer == .cancelRequested { throw EvaluationStop.cancelled }
        } catch let stop as EvaluationStop {
            throw stop
        } catch StoreError.leaseLost {
            throw EvaluationStop.leaseLost
        } catch {
            workers.logger.warning("heartbeat failed; continuing", metadata: ["job": "\(jobID)", "error": "\(error)"])
        }
    }
}
