// Streamed-task staging (migration 0005): a streamed task's mini-batches, stored as they arrive
// and before they train, dropped when the task is recorded or the stream fails.
import Foundation

extension StoreOperations {
    /// Stores one mini-batch of stream `streamID`: features as little-endian Float32 (row after
    /// row), labels as little-endian Int32.
    public func stageTaskBatch(streamID: String, batchIndex: Int, tenantID: String, modelID: String, firstRow: Int,
                               features: [Float], labels: [Int], now: Date = StoreClock.now()) throws {
        var f = Data(capacity: features.count * 4)
        for v in features { withUnsafeBytes(of: v.bitPattern.littleEndian) { f.append(contentsOf: $0) } }
        var l = Data(capacity: labels.count * 4)
        for v in labels { withUnsafeBytes(of: Int32(clamping: v).littleEndian) { l.append(contentsOf: $0) } }
        try withSession(writing: true) { session in
            try session.connection.execute("""
                INSERT INTO task_stream_batches (stream_id, batch_index, tenant_id, model_id, first_row, row_count, features, labels, created_at)
                VALUES (\(streamID), \(batchIndex), \(tenantID), \(modelID), \(firstRow), \(labels.count), \(f), \(l), \(now))
                """)
        }
    }

    /// Drops every staged batch of `streamID`; returns how many there were.
    @discardableResult
    public func dropStagedTaskBatches(streamID: String) throws -> Int {
        try withSession(writing: true) { session in
            try session.connection.execute("DELETE FROM task_stream_batches WHERE stream_id = \(streamID)")
        }
    }

    /// Staged batches (and their rows) of `streamID`, or of every stream when nil.
    public func stagedTaskBatchCount(streamID: String? = nil) throws -> (batches: Int, rows: Int) {
        try withSession(writing: false) { session in
            var sql: SQL = "SELECT count(*) AS n, COALESCE(sum(row_count), 0) AS r FROM task_stream_batches"
            if let streamID { sql = sql + " WHERE stream_id = \(streamID)" }
            let row = try session.connection.queryOne(sql)
            return (try row?.int("n") ?? 0, try row?.int("r") ?? 0)
        }
    }

    /// Drops batches staged before `date` (left by a process that died mid-stream).
    @discardableResult
    public func dropStaleStagedTaskBatches(before date: Date) throws -> Int {
        try withSession(writing: true) { session in
            try session.connection.execute("DELETE FROM task_stream_batches WHERE created_at < \(date)")
        }
    }
}
