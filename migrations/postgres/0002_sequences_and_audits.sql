-- 0002_sequences_and_audits (PostgreSQL): datasets may declare a sequence form (issue 8): every
-- example is sequence_length steps of step_features numbers, labelled once per sequence
-- (labels_per_example = 1) or once per step (labels_per_example = sequence_length).
-- NULL sequence_length / step_features: a flat dataset, as before.
-- min_feature: the smallest feature value, so checking a non-negative model's data needs no blob scan
-- (NULL for datasets stored before this migration: they are scanned).
ALTER TABLE datasets ADD COLUMN sequence_length bigint;
ALTER TABLE datasets ADD COLUMN step_features bigint;
ALTER TABLE datasets ADD COLUMN labels_per_example bigint NOT NULL DEFAULT 1;
ALTER TABLE datasets ADD COLUMN min_feature double precision;

-- Forget audits: one row per forget request that reset columns, kept even when the model is deleted
-- (no foreign key to models), so a tenant can show what was unlearned, when, and from which batches.
CREATE TABLE forget_audits (
    id               text PRIMARY KEY,
    tenant_id        text NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    model_id         text NOT NULL,
    version          bigint NOT NULL,
    request          text NOT NULL,
    batches          text NOT NULL,
    columns_reset    text NOT NULL,
    accuracy_before  double precision,
    accuracy_after   double precision,
    created_at       timestamptz NOT NULL
);
CREATE INDEX forget_audits_model ON forget_audits (tenant_id, model_id, created_at, id);
