// Datasets and their chunked blobs (large SQLite payloads: content files, `DatasetBlobFiles`).
import Foundation

/// Bytes per `dataset_blobs` row.
public let datasetChunkSize = 1 << 20

private let datasetColumns: SQL = "id, tenant_id, name, examples, features, classes, image_shape, sequence_length, step_features, labels_per_example, min_feature, checksum, byte_size, created_at"

extension StoreOperations {
    /// Inserts a dataset's metadata (its bytes follow with `writeDatasetBlob`).
    public func insert(_ dataset: Dataset) throws {
        try withSession(writing: true) { session in
            try session.connection.execute("""
                INSERT INTO datasets (\(sql: datasetColumns)) VALUES (\(dataset.id), \(dataset.tenantID), \(dataset.name),
                \(dataset.examples), \(dataset.features), \(dataset.classes), \(dataset.imageShape), \(dataset.sequenceLength), \(dataset.stepFeatures),
                \(dataset.labelsPerExample), \(dataset.minFeature), \(dataset.checksum),
                \(dataset.byteSize), \(dataset.createdAt))
                """)
        }
    }

    /// The tenant's dataset, or `notFound` (also for another tenant's id).
    public func dataset(id: String, tenantID: String) throws -> Dataset {
        try withSession(writing: false) { session in
            try session.one("SELECT \(sql: datasetColumns) FROM datasets WHERE id = \(id) AND tenant_id = \(tenantID)",
                            notFound: "dataset \(id)", Dataset.init(row:))
        }
    }

    /// The tenant's datasets, oldest first.
    public func datasets(tenantID: String, page: PageRequest = PageRequest()) throws -> Page<Dataset> {
        try withSession(writing: false) { session in
            try session.page("SELECT \(sql: datasetColumns) FROM datasets WHERE tenant_id = \(tenantID) ORDER BY created_at, id",
                             page, Dataset.init(row:))
        }
    }

    /// How many queued or running jobs reference the dataset.
    public func activeJobCount(datasetID: String) throws -> Int {
        try withSession(writing: false) { session in
            try session.connection.queryOne(
                "SELECT count(*) AS n FROM jobs WHERE dataset_id = \(datasetID) AND state IN ('queued', 'running')")?.int("n") ?? 0
        }
    }

    /// Deletes a dataset and its blob; `conflict` while a queued or running job uses it.
    public func deleteDataset(id: String, tenantID: String) throws {
        try withSession(writing: true) { session in
            _ = try session.dataset(id: id, tenantID: tenantID)
            let active = try session.activeJobCount(datasetID: id)
            if active > 0 {
                throw StoreError.conflict(message: "dataset \(id) is used by \(active) queued or running job(s)", sql: nil)
            }
            try session.releaseDatasetBlobFile(datasetID: id)
            try session.connection.execute("DELETE FROM datasets WHERE id = \(id) AND tenant_id = \(tenantID)")
        }
    }

    /// Stores a dataset's bytes from a sequence of chunks of any size (re-chunked to
    /// `datasetChunkSize`), replacing earlier bytes, and sets the dataset's checksum and size.
    public func writeDatasetBlob<Chunks: Sequence<Data>>(datasetID: String, tenantID: String, chunks: Chunks) throws -> BlobSummary {
        var iterator = chunks.makeIterator()
        return try writeDatasetBlob(datasetID: datasetID, tenantID: tenantID) { iterator.next() }
    }

    /// Stores a dataset's bytes pulled from `nextChunk` until it returns nil. At most about two
    /// chunks are in memory at once. Runs in one transaction (not retried: the source is one-shot).
    public func writeDatasetBlob(datasetID: String, tenantID: String, nextChunk: () throws -> Data?) throws -> BlobSummary {
        try withSession(writing: true) { session in
            session.isRetrySafe = false
            _ = try session.dataset(id: datasetID, tenantID: tenantID)
            try session.releaseDatasetBlob(datasetID: datasetID)
            var hasher = SHA256Hex()
            var pending = Data()
            var summary = BlobSummary(byteCount: 0, chunkCount: 0, sha256: "")
            func store(_ chunk: Data) throws {
                try session.connection.execute(
                    "INSERT INTO dataset_blobs (dataset_id, seq, data) VALUES (\(datasetID), \(summary.chunkCount), \(chunk))")
                hasher.update(chunk)
                summary.chunkCount += 1
                summary.byteCount += chunk.count
            }
            while let incoming = try nextChunk() {
                if pending.isEmpty && incoming.count == datasetChunkSize {
                    try store(incoming)
                    continue
                }
                pending.append(incoming)
                while pending.count >= datasetChunkSize {
                    try store(pending.prefix(datasetChunkSize))
                    pending = Data(pending.dropFirst(datasetChunkSize))
                }
            }
            if !pending.isEmpty { try store(pending) }
            summary.sha256 = hasher.finalize()
            try session.connection.execute("""
                UPDATE datasets SET checksum = \(summary.sha256), byte_size = \(summary.byteCount)
                WHERE id = \(datasetID) AND tenant_id = \(tenantID)
                """)
            return summary
        }
    }

    /// Streams a dataset's bytes to `body` one chunk at a time, in order, from one snapshot.
    public func readDatasetBlob(datasetID: String, tenantID: String, _ body: (Data) throws -> Void) throws {
        try withSession(writing: false) { session in
            _ = try session.dataset(id: datasetID, tenantID: tenantID)
            if let directory = session.blobDirectory,
               let file = try session.connection.queryOne("SELECT blob_file FROM datasets WHERE id = \(datasetID)")?.optionalString("blob_file") {
                try DatasetBlobDirectory.read(directory, name: file, chunkSize: datasetChunkSize, body)
                return
            }
            let sequence = try session.connection.query(
                "SELECT seq FROM dataset_blobs WHERE dataset_id = \(datasetID) ORDER BY seq").map { try $0.int("seq") }
            for seq in sequence {
                guard let row = try session.connection.queryOne(
                    "SELECT data FROM dataset_blobs WHERE dataset_id = \(datasetID) AND seq = \(seq)") else {
                    throw StoreError.notFound("chunk \(seq) of dataset \(datasetID)")
                }
                try body(try row.data("data"))
            }
        }
    }
}
