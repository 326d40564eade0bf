// Datasets and their chunked blobs (large SQLite payloads: content files, `DatasetBlobFiles`).
import Foundation

/// Bytes per `dataset_blobs` row.
public let datasetChunkSize = 1 << 20

/// `readDatasetBlobRanges` reads a stored chunk whole, once, when at least this many of the asked
/// pieces fall in it (one query instead of as many), else each piece alone.
let piecesForAWholeChunk = 8

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
            if let (directory, file) = try session.blobFile(ofDataset: datasetID) {
                try DatasetBlobDirectory.read(directory, name: file, chunkSize: datasetChunkSize, body)
                return
            }
            let sequence = try session.connection.query(
                "SELECT seq FROM dataset_blobs WHERE dataset_id = \(datasetID) ORDER BY seq").map { try $0.int("seq") }
            for seq in sequence { try body(try session.blobChunk(ofDataset: datasetID, seq: seq)) }
        }
    }

    /// The bytes of `ranges` (byte offsets into the blob, ascending), each passed to `body` whole and in
    /// order, from one snapshot: a few rows of a large dataset without reading the rest (a content file
    /// is read with `pread`, a chunked blob one `substr` of each chunk a range touches). `notFound`
    /// when a range passes the blob's end.
    public func readDatasetBlobRanges(datasetID: String, tenantID: String, _ ranges: [Range<Int>],
                                      _ body: (Data) throws -> Void) throws {
        try withSession(writing: false) { session in
            _ = try session.dataset(id: datasetID, tenantID: tenantID)
            if let (directory, file) = try session.blobFile(ofDataset: datasetID) {
                try DatasetBlobDirectory.read(directory, name: file, ranges: ranges, body)
                return
            }
            // Chunk sizes as stored (every writer uses `datasetChunkSize`, but nothing here relies on it).
            let chunks = try session.connection.query(
                "SELECT seq, length(data) AS n FROM dataset_blobs WHERE dataset_id = \(datasetID) ORDER BY seq"
            ).map { (seq: try $0.int("seq"), bytes: try $0.int("n")) }
            var starts: [Int] = [], total = 0
            starts.reserveCapacity(chunks.count)
            for (i, c) in chunks.enumerated() {
                guard c.seq == i else { throw StoreError.notFound("chunk \(i) of dataset \(datasetID)") }
                starts.append(total)
                total += c.bytes
            }
            for range in ranges {
                guard range.lowerBound >= 0, range.upperBound <= total else {
                    throw StoreError.notFound("bytes \(range.lowerBound)..<\(range.upperBound) of dataset \(datasetID) (it has \(total))")
                }
            }
            // The pieces of `range`, chunk by chunk: (chunk index, offset in it, bytes).
            func pieces(_ range: Range<Int>) -> [(chunk: Int, offset: Int, count: Int)] {
                var out: [(chunk: Int, offset: Int, count: Int)] = []
                // The last chunk starting at or before the range (then past any empty ones).
                var lo = 0, hi = chunks.count
                while hi - lo > 1 { let mid = (lo + hi) / 2; if starts[mid] <= range.lowerBound { lo = mid } else { hi = mid } }
                var i = lo, at = range.lowerBound
                while at < range.upperBound {
                    while starts[i] + chunks[i].bytes <= at { i += 1 }
                    let inChunk = at - starts[i], n = Swift.min(range.upperBound - at, chunks[i].bytes - inChunk)
                    out.append((i, inChunk, n))
                    at += n
                }
                return out
            }
            // A chunk holding many of the pieces is read once, whole (kept while the next pieces are in
            // it); a few pieces are read alone, so a handful of rows costs their bytes, not their chunks'.
            var piecesIn = [Int](repeating: 0, count: chunks.count)
            for range in ranges { for p in pieces(range) { piecesIn[p.chunk] += 1 } }
            var whole: (chunk: Int, data: Data)? = nil
            for range in ranges {
                var part = Data()
                part.reserveCapacity(range.count)
                for p in pieces(range) {
                    if piecesIn[p.chunk] >= piecesForAWholeChunk {
                        let data: Data
                        if let w = whole, w.chunk == p.chunk {
                            data = w.data
                        } else {
                            whole = nil
                            data = try session.blobChunk(ofDataset: datasetID, seq: chunks[p.chunk].seq)
                            guard data.count == chunks[p.chunk].bytes else { throw StoreError.notFound("chunk \(chunks[p.chunk].seq) of dataset \(datasetID)") }
                            whole = (p.chunk, data)
                        }
                        part.append(data[(data.startIndex + p.offset)..<(data.startIndex + p.offset + p.count)])
                        continue
                    }
                    guard let row = try session.connection.queryOne("""
                        SELECT substr(data, CAST(\(p.offset + 1) AS INTEGER), CAST(\(p.count) AS INTEGER)) AS part
                        FROM dataset_blobs WHERE dataset_id = \(datasetID) AND seq = \(chunks[p.chunk].seq)
                        """) else {
                        throw StoreError.notFound("chunk \(chunks[p.chunk].seq) of dataset \(datasetID)")
                    }
                    let bytes = try row.data("part")
                    guard bytes.count == p.count else { throw StoreError.notFound("bytes \(starts[p.chunk] + p.offset)..<\(starts[p.chunk] + p.offset + p.count) of dataset \(datasetID)") }
                    part.append(bytes)
                }
                try body(part)
            }
        }
    }
}

private extension StoreSession {
    /// The content file holding the dataset's blob (SQLite's large payloads), if it has one.
    func blobFile(ofDataset datasetID: String) throws -> (directory: String, name: String)? {
        guard let directory = blobDirectory,
              let file = try connection.queryOne("SELECT blob_file FROM datasets WHERE id = \(datasetID)")?.optionalString("blob_file") else {
            return nil
        }
        return (directory, file)
    }

    /// One stored chunk of a chunked blob, whole.
    func blobChunk(ofDataset datasetID: String, seq: Int) throws -> Data {
        guard let row = try connection.queryOne("SELECT data FROM dataset_blobs WHERE dataset_id = \(datasetID) AND seq = \(seq)") else {
            throw StoreError.notFound("chunk \(seq) of dataset \(datasetID)")
        }
        return try row.data("data")
    }
}
