-- 0009_dataset_blob_files: a large dataset payload of the SQLite store lives in a content file beside the
-- database (`<database>-blobs/<name>`), written once as the upload arrives, instead of 1 MiB rows of
-- dataset_blobs (which SQLite writes twice: WAL, then checkpoint). NULL: the bytes are in dataset_blobs
-- (small uploads, PostgreSQL, and every dataset stored before this migration).
ALTER TABLE datasets ADD COLUMN blob_file text;
