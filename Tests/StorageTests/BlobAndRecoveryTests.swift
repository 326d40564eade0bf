// Large blobs stream in bounded memory; the PostgreSQL pool survives a server restart;
// the factory picks the backend from the URL.
import Foundation
import Testing
@testable import Storage
import TestSupport

extension ConformanceTests {
    /// 100 chunks of 1 MiB, each different (index stamped into a shared random base), written
    /// from a generator and read back through the callback: compared by SHA-256, with the
    /// growth of resident memory sampled throughout.
    @Test(arguments: TestDatabase.backends)
    func hundredMebibyteBlobRoundTripsInBoundedMemory(backend: Backend) throws {
        try TestDatabase.withStore(backend) { store in
            let tenant = try TestDatabase.tenant(store)
            let dataset = Dataset(tenantID: tenant.id, name: "big", examples: 100, features: 1 << 18, classes: 10)
            try store.insert(dataset)
            let chunkCount = 100
            var base = Data(count: datasetChunkSize)
            var state: UInt64 = 0x9E37_79B9_7F4A_7C15
            base.withUnsafeMutableBytes { bytes in
                let words = bytes.bindMemory(to: UInt64.self)
                for index in words.indices {
                    state ^= state << 13; state ^= state >> 7; state ^= state << 17
                    words[index] = state
                }
            }
            func chunk(_ index: Int) -> Data {
                var data = base
                withUnsafeBytes(of: UInt64(index).littleEndian) { data.replaceSubrange(0..<8, with: $0) }
                return data
            }

            let baseline = TestDatabase.residentBytes()
            var peak = baseline
            var produced = 0
            var writtenHash = SHA256Hex()
            let summary = try store.writeDatasetBlob(datasetID: dataset.id, tenantID: tenant.id) {
                peak = max(peak, TestDatabase.residentBytes())
                guard produced < chunkCount else { return nil }
                let next = chunk(produced)
                writtenHash.update(next)
                produced += 1
                return next
            }
            let expected = writtenHash.finalize()
            #expect(summary == BlobSummary(byteCount: chunkCount * datasetChunkSize, chunkCount: chunkCount, sha256: expected))
            let stored = try store.dataset(id: dataset.id, tenantID: tenant.id)
            #expect(stored.byteSize == chunkCount * datasetChunkSize && stored.checksum == expected)

            var readHash = SHA256Hex()
            var readChunks = 0, readBytes = 0
            try store.readDatasetBlob(datasetID: dataset.id, tenantID: tenant.id) { data in
                peak = max(peak, TestDatabase.residentBytes())
                readHash.update(data)
                readChunks += 1
                readBytes += data.count
            }
            #expect(readChunks == chunkCount && readBytes == chunkCount * datasetChunkSize)
            #expect(readHash.finalize() == expected)
            let growth = peak - baseline
            #expect(growth < 48 << 20, "resident memory grew by \(growth >> 20) MiB while streaming 100 MiB")
        }
    }

    @Test(arguments: TestDatabase.backends)
    func oddSizedChunksAreRechunked(backend: Backend) throws {
        try TestDatabase.withStore(backend) { store in
            let tenant = try TestDatabase.tenant(store)
            let dataset = Dataset(tenantID: tenant.id, name: "odd", examples: 1, features: 1, classes: 1)
            try store.insert(dataset)
            let bytes = Data((0..<(datasetChunkSize * 5 / 2)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 11) })
            let pieces = stride(from: 0, to: bytes.count, by: 300_007).map { bytes[$0..<min($0 + 300_007, bytes.count)] }
            let summary = try store.writeDatasetBlob(datasetID: dataset.id, tenantID: tenant.id, chunks: pieces.map { Data($0) })
            #expect(summary.chunkCount == 3 && summary.byteCount == bytes.count && summary.sha256 == SHA256Hex.digest(bytes))
            var sizes: [Int] = [], joined = Data()
            try store.readDatasetBlob(datasetID: dataset.id, tenantID: tenant.id) { sizes.append($0.count); joined.append($0) }
            #expect(sizes == [datasetChunkSize, datasetChunkSize, datasetChunkSize / 2] && joined == bytes)
            // Rewriting replaces; an empty blob is allowed.
            #expect(try store.writeDatasetBlob(datasetID: dataset.id, tenantID: tenant.id, chunks: [Data]()).byteCount == 0)
            try store.readDatasetBlob(datasetID: dataset.id, tenantID: tenant.id) { _ in Issue.record("no chunks expected") }
        }
    }

    /// Byte ranges of a blob read back exactly: inside a chunk, across a chunk boundary, the tail,
    /// empty, from chunked rows on both backends and from an SQLite content file; past the end is
    /// `notFound`, and nothing else is read (a 2.5 MiB blob, a few hundred bytes asked for).
    @Test(arguments: TestDatabase.backends)
    func byteRangesReadAcrossChunkBoundaries(backend: Backend) throws {
        try TestDatabase.withStore(backend) { store in
            let tenant = try TestDatabase.tenant(store)
            let bytes = Data((0..<(datasetChunkSize * 5 / 2)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 9) })
            let c = datasetChunkSize
            let ranges = [0..<10, (c - 5)..<(c + 7), (c + 100)..<(c + 100), (2 * c - 1)..<(2 * c + 300), (bytes.count - 3)..<bytes.count]
            var datasets: [Dataset] = []
            let chunked = Dataset(tenantID: tenant.id, name: "chunked", examples: 1, features: 1, classes: 1)
            try store.insert(chunked)
            _ = try store.writeDatasetBlob(datasetID: chunked.id, tenantID: tenant.id,
                                           chunks: stride(from: 0, to: bytes.count, by: 700_001).map { Data(bytes[$0..<min($0 + 700_001, bytes.count)]) })
            datasets.append(chunked)
            if let file = try store.makeDatasetBlobFile() {
                try bytes.withUnsafeBytes { try file.write($0) }
                try file.finish()
                let filed = Dataset(tenantID: tenant.id, name: "file", examples: 1, features: 1, classes: 1)
                try store.transaction { s in
                    try s.insert(filed)
                    _ = try s.attachDatasetBlob(datasetID: filed.id, tenantID: tenant.id, file: file)
                }
                datasets.append(filed)
            }
            #expect(datasets.count == (backend == .sqlite ? 2 : 1))
            for ds in datasets {
                var parts: [Data] = []
                try store.readDatasetBlobRanges(datasetID: ds.id, tenantID: tenant.id, ranges) { parts.append($0) }
                #expect(parts == ranges.map { Data(bytes[$0]) }, "\(ds.name)")
                // Many rows of one stored chunk (read once, whole), one crossing into the next (read alone).
                let dense = (0..<20).map { ($0 * 30_000)..<($0 * 30_000 + 3) } + [(700_001 - 2)..<(700_001 + 2), (c + 9)..<(c + 11)]
                parts = []
                try store.readDatasetBlobRanges(datasetID: ds.id, tenantID: tenant.id, dense) { parts.append($0) }
                #expect(parts == dense.map { Data(bytes[$0]) }, "\(ds.name), dense")
                #expect(throws: StoreError.self, "\(ds.name)") {
                    try store.readDatasetBlobRanges(datasetID: ds.id, tenantID: tenant.id, [(bytes.count - 1)..<(bytes.count + 1)]) { _ in }
                }
                #expect(throws: StoreError.self, "another tenant's dataset") {
                    try store.readDatasetBlobRanges(datasetID: ds.id, tenantID: "someone-else", [0..<1]) { _ in }
                }
            }
        }
    }

    @Test(.enabled(if: TestDatabase.postgresURL != nil || TestDatabase.isCI, "needs PFC_TEST_DATABASE_URL"))
    func postgresPoolRecoversAfterServerRestart() throws {
        guard let restart = TestDatabase.environment["PFC_TEST_PG_RESTART"], !restart.isEmpty else {
            if TestDatabase.isCI { Issue.record("CI=true but PFC_TEST_PG_RESTART is not set: use scripts/with-postgres.sh") }
            return
        }
        try TestDatabase.withStore(.postgres, poolSize: 3) { store in
            let tenant = try TestDatabase.tenant(store)
            // Open several pooled connections so that all of them go stale together.
            let group = DispatchGroup()
            for _ in 0..<3 {
                DispatchQueue.global().async(group: group) { _ = try? store.read { s in try s.connection.query("SELECT pg_sleep(0.05)::text AS slept") } }
            }
            group.wait()

            try #require(runShell(restart) == 0, "restart command failed")

            // The very next calls succeed: stale connections are reset on checkout.
            #expect(try store.tenant(id: tenant.id) == tenant)
            for index in 0..<6 { try store.insert(Tenant(name: "after-restart-\(index)")) }
            #expect(try store.read { try $0.connection.queryOne("SELECT count(*) AS n FROM tenants")!.int("n") } == 7)
        }
    }

    @Test(arguments: TestDatabase.backends)
    func factorySelectsBackendFromURL(backend: Backend) throws {
        switch backend {
        case .sqlite:
            let path = TestDatabase.temporaryPath("nested/dir/pfc.sqlite")
            defer { try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: path).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path) }
            let store = try StoreFactory.openForServing(databaseURL: nil, sqlitePath: path, migrate: true)
            #expect(store.backend == .sqlite && FileManager.default.fileExists(atPath: path))
            #expect(try store.migrationStatus().pending.isEmpty)
            #expect(try StoreFactory.open(databaseURL: "", sqlitePath: path).backend == .sqlite)
            expectStoreError({ if case .invalidArgument = $0 { true } else { false } }) {
                _ = try StoreFactory.open(databaseURL: "mysql://localhost/x", sqlitePath: path)
            }
        case .postgres:
            guard let url = TestDatabase.postgresURL else { Issue.record("PFC_TEST_DATABASE_URL is not set"); return }
            #expect(try StoreFactory.open(databaseURL: url).backend == .postgres)
            let alternate = url.replacingOccurrences(of: "postgres://", with: "postgresql://")
            #expect(try StoreFactory.open(databaseURL: alternate).backend == .postgres)
            expectStoreError({ if case .connectionFailed = $0 { true } else { false } }) {
                _ = try StoreFactory.open(databaseURL: "postgres://nobody@127.0.0.1:1/none")
            }
        }
    }
}

/// Runs `command` with /bin/sh and returns its exit status. (posix_spawn + waitpid: Foundation's
/// Process.waitUntilExit did not return under the test runner.)
private func runShell(_ command: String) -> Int32 {
    var pid = pid_t()
    let words: [String] = ["/bin/sh", "-c", command]
    let arguments: [UnsafeMutablePointer<CChar>?] = words.map { strdup($0) } + [nil]
    defer { arguments.forEach { free($0) } }
    guard posix_spawn(&pid, "/bin/sh", nil, nil, arguments, environ) == 0 else { return -1 }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
    return (status >> 8) & 0xff
}
