// ForgetRunner: runs one `forget` job: a forget whose measurements were too large to answer at once,
// or one sent while the model's train, task or forget jobs were queued or running (Forgetter). The
// job plans the forget again against the model's latest version when it runs (the version the jobs
// queued before it wrote: the queue runs them in order), then measures with heartbeats (progress: the
// rows of the forward passes done) and cancellation between chunks, and writes the version, its audit
// and the job's completion in one transaction (which fails with the route's 409 message if yet
// another version was written while it measured).
import Foundation
import HTTP
import Logging
import PFC
import Storage

struct ForgetRunner {
    let workers: JobWorkers
    let job: Job
    let owner: String
    let params: ForgetJobParams

    var store: any Store { workers.store }

    func run() { workers.runChunkedJob(job, owner: owner, forget) }

    private func forget() throws {
        guard let modelID = job.modelID else { throw JobError("job has no model") }
        let forgetter = Forgetter(store: store, models: ModelLoader(store: store, cache: ModelCache(capacity: 1)),
                                  limits: workers.configuration.limits)
        let plan = try forgetter.plan(params.request, modelID: modelID, tenantID: job.tenantID)
        let total = plan.passRows
        var done = 0
        var heartbeat = ChunkHeartbeat(workers: workers, jobID: job.id, owner: owner)
        _ = try forgetter.run(plan, job: (job.id, owner)) { rows throws in
            done = min(total, done + rows)
            try heartbeat.beat { try JSONColumn(EvaluationProgressDTO(examplesDone: done, examples: total)) }
        }
        workers.logger.info("job succeeded", metadata: ["job": "\(job.id)"])
    }
}
