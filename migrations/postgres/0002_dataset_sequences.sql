-- 0002_dataset_sequences (PostgreSQL): datasets may declare a sequence form (issue 8): every
-- example is sequence_length steps of step_features numbers, labelled once per sequence
-- (labels_per_example = 1) or once per step (labels_per_example = sequence_length).
-- NULL sequence_length / step_features: a flat dataset, as before.
-- min_feature: the smallest feature value, so checking a non-negative model's data needs no blob scan
-- (NULL for datasets stored before this migration: they are scanned).
ALTER TABLE datasets ADD COLUMN sequence_length bigint;
ALTER TABLE datasets ADD COLUMN step_features bigint;
ALTER TABLE datasets ADD COLUMN labels_per_example bigint NOT NULL DEFAULT 1;
ALTER TABLE datasets ADD COLUMN min_feature double precision;
