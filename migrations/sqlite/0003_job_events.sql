-- 0003_job_events (SQLite): live job events (issue 13). Every UPDATE of a job bumps its
-- revision; the store tells its in-process observers (the event hub) after commit. SSE event ids
-- are revisions (Last-Event-ID).
ALTER TABLE jobs ADD COLUMN revision integer NOT NULL DEFAULT 0;
