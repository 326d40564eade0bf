-- 0004_job_checkpoints (PostgreSQL): the last checkpoint of a running train or task job (issue 13),
-- so a job whose replica dies resumes where it stopped instead of from epoch 1. One row per job,
-- replaced at every checkpoint by the worker holding the lease, deleted when the job ends.
-- state: the service's checkpoint document (trainer state: weights, optimizer statistics, RNG,
-- position, best-validation snapshot; the ledger so far), stored like model weights.
CREATE TABLE job_checkpoints (
    job_id      text PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE,
    attempt     bigint NOT NULL,
    epoch       bigint NOT NULL,
    batch       bigint NOT NULL,
    state       bytea NOT NULL,
    created_at  timestamptz NOT NULL
);
