-- 0006_import_reason (SQLite): a model version may be made by an import (POST /v1/models/import,
-- issue 16). SQLite cannot alter a CHECK constraint, so the table is rebuilt with the wider one
-- (no other table references model_versions).
CREATE TABLE model_versions_new (
    model_id        text NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    version         integer NOT NULL,
    parent_version  integer,
    reason          text NOT NULL CHECK (reason IN ('create', 'train', 'task', 'forget', 'perturb', 'import')),
    metrics         text NOT NULL DEFAULT '{}',
    weights         blob NOT NULL,
    created_at      integer NOT NULL,
    PRIMARY KEY (model_id, version)
);
INSERT INTO model_versions_new (model_id, version, parent_version, reason, metrics, weights, created_at)
    SELECT model_id, version, parent_version, reason, metrics, weights, created_at FROM model_versions;
DROP TABLE model_versions;
ALTER TABLE model_versions_new RENAME TO model_versions;
