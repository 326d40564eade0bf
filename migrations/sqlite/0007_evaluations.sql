-- 0007_evaluations (SQLite): the evaluations of model versions on stored datasets (issue 16,
-- POST /v1/models/{id}/evaluate): accuracy and mean loss as columns, the whole result (per-class
-- precision, recall, F1, the confusion matrix) as JSON. Deleted with their model; the dataset id is
-- kept as text, so an evaluation outlives the dataset it was measured on.
CREATE TABLE evaluations (
    id          text PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    model_id    text NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    version     integer NOT NULL,
    dataset_id  text NOT NULL,
    job_id      text,
    accuracy    real NOT NULL,
    loss        real NOT NULL,
    examples    integer NOT NULL,
    result      text NOT NULL,
    created_at  integer NOT NULL
);
CREATE INDEX evaluations_version ON evaluations (model_id, version, created_at, id);
