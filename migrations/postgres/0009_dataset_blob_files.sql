-- 0009_dataset_blob_files: the column the SQLite store uses for datasets kept in content files beside its
-- database (see migrations/sqlite/0009). PostgreSQL keeps every payload in dataset_blobs (bytea), so it
-- stays NULL here; the column keeps both schemas alike.
ALTER TABLE datasets ADD COLUMN blob_file text;
