-- 0006_import_reason (PostgreSQL): a model version may be made by an import (POST /v1/models/import,
-- issue 16), beside create, train, task, forget and perturb.
ALTER TABLE model_versions DROP CONSTRAINT IF EXISTS model_versions_reason_check;
ALTER TABLE model_versions ADD CONSTRAINT model_versions_reason_check
    CHECK (reason IN ('create', 'train', 'task', 'forget', 'perturb', 'import'));
