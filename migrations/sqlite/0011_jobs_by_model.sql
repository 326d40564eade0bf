-- 0011_jobs_by_model (SQLite): the queued and running jobs of each model, in queue order. The
-- queue claims a model's train, task and forget jobs one at a time, oldest first (each continues the
-- version the one before it wrote); this index answers "is an older one queued or running" per claim.
CREATE INDEX jobs_model_active ON jobs (model_id, created_at, id) WHERE state IN ('queued', 'running') AND model_id IS NOT NULL;
