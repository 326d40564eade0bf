-- 0004_job_checkpoints (SQLite): the last checkpoint of a running train or task job (issue 13),
-- so a job whose process dies resumes where it stopped instead of from epoch 1. One row per job,
-- replaced at every checkpoint by the worker holding the lease, deleted when the job ends.
-- state: the service's checkpoint document (trainer state: weights, optimizer statistics, RNG,
-- position, best-validation snapshot; the ledger so far), stored like model weights.
CREATE TABLE job_checkpoints (
    job_id      text PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE,
    attempt     integer NOT NULL,
    epoch       integer NOT NULL,
    batch       integer NOT NULL,
    state       blob NOT NULL,
    created_at  integer NOT NULL
);
