-- 0003_job_events (PostgreSQL): live job events (issue 13). Every UPDATE of a job bumps its
-- revision and, in the same transaction, sends NOTIFY pfc_job_events '<job id>:<revision>'
-- (delivered at commit), so every replica's event hub re-reads the row once and pushes it to
-- its subscribers. SSE event ids are revisions (Last-Event-ID).
ALTER TABLE jobs ADD COLUMN revision bigint NOT NULL DEFAULT 0;
