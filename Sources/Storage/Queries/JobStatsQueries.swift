// Job counts for the metrics endpoint, and the usage checks that guard deletes.
import Foundation

extension StoreOperations {
    /// How many jobs are in each state (all tenants).
    public func jobCountsByState() throws -> [JobState: Int] {
        try withSession(writing: false) { session in
            var out: [JobState: Int] = [:]
            for row in try session.connection.query("SELECT state, count(*) AS n FROM jobs GROUP BY state") {
                if let state = JobState(rawValue: try row.string("state")) { out[state] = try row.int("n") }
            }
            return out
        }
    }

    /// Queued or running jobs that use the model.
    public func activeJobCount(modelID: String) throws -> Int {
        try withSession(writing: false) { session in
            try session.connection.queryOne(
                "SELECT count(*) AS n FROM jobs WHERE model_id = \(modelID) AND state IN ('queued', 'running')")?.int("n") ?? 0
        }
    }
}
