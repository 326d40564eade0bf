-- 0002_dataset_sequences (SQLite): datasets may declare a sequence form (issue 8): every
-- example is sequence_length steps of step_features numbers, labelled once per sequence
-- (labels_per_example = 1) or once per step (labels_per_example = sequence_length).
-- NULL sequence_length / step_features: a flat dataset, as before.
-- min_feature: the smallest feature value, so checking a non-negative model's data needs no blob scan
-- (NULL for datasets stored before this migration: they are scanned).
ALTER TABLE datasets ADD COLUMN sequence_length integer;
ALTER TABLE datasets ADD COLUMN step_features integer;
ALTER TABLE datasets ADD COLUMN labels_per_example integer NOT NULL DEFAULT 1;
ALTER TABLE datasets ADD COLUMN min_feature real;
