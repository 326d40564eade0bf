-- 0005_task_stream_staging (SQLite): streamed tasks (POST /v1/models/{id}/tasks/stream) stage
-- their examples here, one row per mini-batch, as the body arrives and before the batch trains
-- (issue 13). The rows of one stream are dropped when its task is recorded, and when the stream
-- fails (a bad line, the client gone); rows a dead process left behind are dropped after a day.
CREATE TABLE task_stream_batches (
    stream_id   text NOT NULL,
    batch_index integer NOT NULL,
    tenant_id   text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    model_id    text NOT NULL,
    first_row   integer NOT NULL,
    row_count   integer NOT NULL,
    features    blob NOT NULL,
    labels      blob NOT NULL,
    created_at  integer NOT NULL,
    PRIMARY KEY (stream_id, batch_index)
);
CREATE INDEX task_stream_batches_created ON task_stream_batches (created_at);
