// DatasetBlobFiles: large dataset payloads of the SQLite store, kept in content files beside the
// database (`<database>-blobs/<uuid>.pfcdata`) instead of 1 MiB `dataset_blobs` rows.
//
// Why: a blob in SQLite is written twice (the WAL frames, then the checkpoint's copy into the database
// file), and the upload had to stage it in a spill file first so that a slow client never held SQLite's
// one write lock. A content file is written once, as the body arrives, outside any transaction; the
// dataset row that references it is written in a short transaction afterwards.
//
// Crash safety (nothing half-written is ever visible):
// - A file is created under an exclusive `flock`, written, `fdatasync`ed and its directory entry
//   `fsync`ed before any row can reference it (`attachDatasetBlob`), so a committed row never points at
//   a file whose bytes could still be lost.
// - A file no committed row references is an orphan: an upload that failed, was refused, or died with
//   the process. Failed and refused uploads unlink their file at once (`deinit` of an uncommitted
//   `DatasetBlobFile`); `SQLiteStore.migrate()` (run at every server start) sweeps the rest: every file
//   in the directory that no `datasets.blob_file` names and no live upload holds locked.
// - Deleting a dataset unlinks its file after the deleting transaction commits.
import CSQLite
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A dataset payload being written to a content file of the store, before its row exists. Not
/// shared between threads (one upload writes it). Unlinked on `deinit` unless the transaction that
/// attached it to a dataset committed.
public final class DatasetBlobFile: @unchecked Sendable {
    /// The file name inside the store's blob directory (what `datasets.blob_file` holds).
    public let name: String
    let directory: String
    private var fd: Int32
    private var hasher = SHA256Hex()
    /// Bytes written so far.
    public private(set) var byteCount = 0
    private var writebackStart = 0
    private var summary: BlobSummary?
    private var committed = false
    /// The bulk of the bytes bypasses the page cache (see `DirectAppender`); nil once drained, or
    /// where the file system refuses direct I/O.
    private var direct: DirectAppender?

    /// Bytes after which written data is handed to the disk (`sync_file_range`), so the final
    /// `fdatasync` has little left to wait for.
    static let writebackBytes = 8 << 20

    init(directory: String) throws {
        self.directory = directory
        (name, fd) = try Self.createLocked(in: directory)
        direct = DirectAppender(path: directory + "/" + name, bufferedFD: fd)
    }

    /// A new, empty content file in `directory`, open and locked: its name and descriptor.
    private static func createLocked(in directory: String) throws -> (name: String, fd: Int32) {
        for _ in 0..<8 {
            let name = StoreID.make() + ".pfcdata"
            let path = directory + "/" + name
            let fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw failure("cannot create \(path)") }
            // Held while the upload lives: the orphan sweep skips locked files.
            guard flock(fd, LOCK_EX) == 0 else {
                let error = failure("cannot lock \(path)")
                close(fd); unlink(path)
                throw error
            }
            // Another process's sweep may have locked and unlinked the new, empty file between `open`
            // and `flock`; bytes written to it then would be lost. Keep it only if the name is still its.
            if isLinked(fd, at: path) { return (name, fd) }
            close(fd)
        }
        throw StoreError.database(code: "EAGAIN", message: "cannot create a dataset blob file in \(directory): each was removed as soon as it was made", sql: nil)
    }

    /// True when `path` names the file open as `fd` (it was not unlinked or replaced).
    static func isLinked(_ fd: Int32, at path: String) -> Bool {
        var open = stat(), named = stat()
        guard fstat(fd, &open) == 0, open.st_nlink > 0, lstat(path, &named) == 0 else { return false }
        return open.st_dev == named.st_dev && open.st_ino == named.st_ino
    }

    deinit {
        if !committed { unlink(directory + "/" + name) }
        close(fd)
    }

    /// Appends bytes (hashing them on the way).
    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard summary == nil else { throw StoreError.invalidArgument("the dataset blob file is already finished") }
        guard bytes.count > 0 else { return }
        hasher.update(bytes)
        if let direct {
            try direct.append(bytes)
            byteCount += bytes.count
            return
        }
        try Self.pwriteAll(fd, bytes, at: byteCount)
        byteCount += bytes.count
        if byteCount - writebackStart >= Self.writebackBytes {
            _ = Self.startWriteback?(fd, off_t(writebackStart), off_t(byteCount - writebackStart), 2 /* SYNC_FILE_RANGE_WRITE */)
            writebackStart = byteCount
        }
    }

    /// Writes what the direct appender still stages through the page cache and goes on without it
    /// (before a read, and at the end).
    private func drainDirect() throws {
        guard let appender = direct else { return }
        direct = nil
        let staged = appender.staged
        try Self.pwriteAll(fd, staged, at: appender.written)
        writebackStart = appender.written
    }

    static func pwriteAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int) throws {
        guard var p = bytes.baseAddress else { return }
        var left = bytes.count, at = offset
        while left > 0 {
            let n = Glibc.pwrite(fd, p, left, off_t(at))
            if n < 0 {
                if errno == EINTR { continue }
                throw Self.failure("cannot write a dataset blob file")
            }
            p += n
            left -= n
            at += n
        }
    }

    /// Calls `body` with the bytes written so far, in chunks of at most `chunkSize` (for a builder
    /// that rewrites its rows in another form).
    public func readBack(chunkSize: Int = datasetChunkSize, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        try drainDirect()
        var buffer = [UInt8](repeating: 0, count: chunkSize)
        var offset = 0
        while offset < byteCount {
            let n = try buffer.withUnsafeMutableBytes { b in try Self.pread(fd, b.baseAddress!, min(chunkSize, byteCount - offset), offset) }
            guard n > 0 else { throw StoreError.database(code: "EIO", message: "dataset blob file ended early", sql: nil) }
            try buffer.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            offset += n
        }
    }

    /// Up to `maxCount` bytes written so far, from `offset`.
    public func readChunk(offset: Int, maxCount: Int) throws -> Data {
        try drainDirect()
        var chunk = Data(count: max(0, min(maxCount, byteCount - offset)))
        var filled = 0
        while filled < chunk.count {
            let n = try chunk.withUnsafeMutableBytes { b in try Self.pread(fd, b.baseAddress! + filled, b.count - filled, offset + filled) }
            guard n > 0 else { throw StoreError.database(code: "EIO", message: "dataset blob file ended early", sql: nil) }
            filled += n
        }
        return chunk
    }

    /// Makes the bytes and the directory entry durable and returns what was written. Call it before
    /// the transaction that attaches the file, so the write lock is not held over the disk flush.
    @discardableResult public func finish() throws -> BlobSummary {
        if let summary { return summary }
        try drainDirect()
        guard fdatasync(fd) == 0 else { throw Self.failure("cannot sync a dataset blob file") }
        try DatasetBlobDirectory.syncDirectory(directory)
        let done = BlobSummary(byteCount: byteCount, chunkCount: 0, sha256: hasher.finalize())
        summary = done
        return done
    }

    /// The committed transaction now owns the file.
    func markCommitted() { committed = true }

    var finishedSummary: BlobSummary? { summary }

    /// Linux's `sync_file_range` (glibc declares it only under _GNU_SOURCE, which Swift's Glibc module
    /// does not set): starts writeback of a range without waiting for it.
    static let startWriteback: (@convention(c) (Int32, off_t, off_t, UInt32) -> Int32)? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "sync_file_range") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (Int32, off_t, off_t, UInt32) -> Int32).self)
    }()

    static func pread(_ fd: Int32, _ p: UnsafeMutableRawPointer, _ count: Int, _ offset: Int) throws -> Int {
        while true {
            let n = Glibc.pread(fd, p, count, off_t(offset))
            if n >= 0 { return n }
            if errno != EINTR { throw failure("cannot read a dataset blob file") }
        }
    }

    static func failure(_ what: String) -> StoreError {
        StoreError.database(code: "ERRNO_\(errno)", message: "\(what): \(String(cString: strerror(errno)))", sql: nil)
    }
}

/// The blob directory of a SQLite store.
enum DatasetBlobDirectory {
    /// `<database>-blobs` for a file database; nil for in-memory and URI databases (blobs then stay in rows).
    static func path(forDatabase path: String) -> String? {
        guard !path.isEmpty, path != ":memory:", !path.hasPrefix("file:") else { return nil }
        return path + "-blobs"
    }

    static func create(_ directory: String) throws {
        if mkdir(directory, 0o700) != 0 && errno != EEXIST { throw DatasetBlobFile.failure("cannot create \(directory)") }
    }

    static func syncDirectory(_ directory: String) throws {
        let dfd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dfd >= 0 else { throw DatasetBlobFile.failure("cannot open \(directory)") }
        defer { close(dfd) }
        guard fsync(dfd) == 0 else { throw DatasetBlobFile.failure("cannot sync \(directory)") }
    }

    /// Removes every file of the directory that `isReferenced` says no row names and no live upload
    /// holds locked. `isReferenced` is asked only once the file's lock is held, so it must read the
    /// database afresh each time: an upload commits its row before it releases the lock, and a
    /// snapshot older than the lock would not see that row. Returns the names removed.
    static func sweep(_ directory: String, isReferenced: (String) throws -> Bool) throws -> [String] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [] }
        var removed: [String] = []
        for name in names.sorted() {
            let path = directory + "/" + name
            let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
            guard fd >= 0 else { continue }
            defer { close(fd) }
            guard flock(fd, LOCK_EX | LOCK_NB) == 0 else { continue }  // an upload in progress
            if try !isReferenced(name) {
                unlink(path)
                removed.append(name)
            }
        }
        return removed
    }

    /// Streams a content file in `chunkSize` pieces.
    static func read(_ directory: String, name: String, chunkSize: Int, _ body: (Data) throws -> Void) throws {
        guard !name.contains("/") else { throw StoreError.database(code: "EINVAL", message: "bad dataset blob file name", sql: nil) }
        let path = directory + "/" + name
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw StoreError.notFound("the content file of the dataset (\(name))") }
        defer { close(fd) }
        var offset = 0
        while true {
            var chunk = Data(count: chunkSize)
            var filled = 0
            while filled < chunkSize {
                let n = try chunk.withUnsafeMutableBytes { b in try DatasetBlobFile.pread(fd, b.baseAddress! + filled, chunkSize - filled, offset + filled) }
                if n == 0 { break }
                filled += n
            }
            guard filled > 0 else { return }
            if filled < chunkSize { chunk.count = filled }
            try body(chunk)
            offset += filled
            if filled < chunkSize { return }
        }
    }

    /// Reads the byte ranges `ranges` of a content file, each passed to `body` whole, in order;
    /// `notFound` when one passes the file's end.
    static func read(_ directory: String, name: String, ranges: [Range<Int>], _ body: (Data) throws -> Void) throws {
        guard !name.contains("/") else { throw StoreError.database(code: "EINVAL", message: "bad dataset blob file name", sql: nil) }
        let fd = open(directory + "/" + name, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw StoreError.notFound("the content file of the dataset (\(name))") }
        defer { close(fd) }
        for range in ranges {
            guard range.lowerBound >= 0 else { throw StoreError.notFound("bytes before the start of the dataset's content file") }
            var part = Data(count: range.count)
            var filled = 0
            while filled < range.count {
                let n = try part.withUnsafeMutableBytes { b in
                    try DatasetBlobFile.pread(fd, b.baseAddress! + filled, range.count - filled, range.lowerBound + filled)
                }
                guard n > 0 else {
                    throw StoreError.notFound("bytes \(range.lowerBound)..<\(range.upperBound) of the dataset's content file (\(name))")
                }
                filled += n
            }
            try body(part)
        }
    }
}

extension Store {
    /// A content file to stage a large dataset payload in before its row is written, for stores that
    /// keep such payloads beside the database (SQLite); nil: the bytes go through `writeDatasetBlob`.
    public func makeDatasetBlobFile() throws -> DatasetBlobFile? {
        try (self as? SQLiteStore)?.newDatasetBlobFile()
    }
}

extension SQLiteStore {
    func newDatasetBlobFile() throws -> DatasetBlobFile? {
        guard let blobDirectory else { return nil }
        try DatasetBlobDirectory.create(blobDirectory)
        return try DatasetBlobFile(directory: blobDirectory)
    }

    /// Removes content files no dataset references (uploads that died with the process, datasets
    /// removed by a cascade). Run by `migrate()`; safe while uploads run, here or in another process
    /// on the same database (their files are locked until their rows are committed, and each file is
    /// checked in a read transaction of its own, begun after its lock). `afterEachCheck` is a test
    /// hook, called with each name once it was checked.
    @discardableResult public func sweepDatasetBlobFiles(afterEachCheck: ((String) throws -> Void)? = nil) throws -> [String] {
        guard let blobDirectory else { return [] }
        return try DatasetBlobDirectory.sweep(blobDirectory) { name in
            let referenced = try read { session in
                try session.connection.queryOne("SELECT 1 AS one FROM datasets WHERE blob_file = \(name)") != nil
            }
            try afterEachCheck?(name)
            return referenced
        }
    }
}

extension StoreOperations {
    /// Makes a finished content file the bytes of a dataset (replacing earlier bytes) and sets the
    /// dataset's checksum and size. The file belongs to the dataset once the transaction commits; if
    /// it rolls back, the file is removed with its `DatasetBlobFile`.
    public func attachDatasetBlob(datasetID: String, tenantID: String, file: DatasetBlobFile) throws -> BlobSummary {
        try withSession(writing: true) { session in
            guard let summary = file.finishedSummary else { throw StoreError.invalidArgument("finish() the dataset blob file before attaching it") }
            guard session.blobDirectory == file.directory else {
                throw StoreError.invalidArgument("the dataset blob file belongs to another store")
            }
            _ = try session.dataset(id: datasetID, tenantID: tenantID)
            try session.releaseDatasetBlob(datasetID: datasetID)
            try session.connection.execute("""
                UPDATE datasets SET blob_file = \(file.name), checksum = \(summary.sha256), byte_size = \(summary.byteCount)
                WHERE id = \(datasetID) AND tenant_id = \(tenantID)
                """)
            session.afterCommit.append { file.markCommitted() }
            return summary
        }
    }
}

extension StoreSession {
    /// Drops the dataset's current bytes: its chunk rows now, its content file (if any) once this
    /// transaction commits.
    func releaseDatasetBlob(datasetID: String) throws {
        try connection.execute("DELETE FROM dataset_blobs WHERE dataset_id = \(datasetID)")
        try releaseDatasetBlobFile(datasetID: datasetID)
    }

    /// Unlinks the dataset's content file after commit (the row is being deleted or re-pointed).
    func releaseDatasetBlobFile(datasetID: String) throws {
        guard let directory = blobDirectory,
              let name = try connection.queryOne("SELECT blob_file FROM datasets WHERE id = \(datasetID)")?.optionalString("blob_file")
        else { return }
        try connection.execute("UPDATE datasets SET blob_file = NULL WHERE id = \(datasetID)")
        afterCommit.append { unlink(directory + "/" + name) }
    }
}
