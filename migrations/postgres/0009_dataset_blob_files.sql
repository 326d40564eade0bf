-- 0009_dataset_blob_files: the column the SQLite store uses for datasets kept in content files beside its
-- database (see migrations/sqlite/0009). PostgreSQL keeps every payload in dataset_blobs (bytea), so it
-- stays NULL here; the column keeps both schemas alike.
ALTER TABLE datasets ADD COLUMN blob_file text;

-- Dataset chunks are stored without TOAST's pglz compression (only out of line): compressing every 1 MiB
-- chunk on upload made PostgreSQL ten times slower than the rest of the path (a 47 MB MNIST .npy: 10.8 s
-- with compression, 1.2 s without, the server's own CPU 0.2 s either way). Rows stored earlier keep their
-- form; reads are the same.
ALTER TABLE dataset_blobs ALTER COLUMN data SET STORAGE EXTERNAL;
