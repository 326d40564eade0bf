// One conformance suite, run against SQLite and PostgreSQL. Serialized because one test
// restarts the PostgreSQL server; every test uses its own database file or schema.
import Foundation
import Synchronization
import Testing
@testable import Storage
import TestSupport

@Suite(.serialized) struct ConformanceTests {
    @Test(.enabled(if: TestDatabase.postgresURL != nil || TestDatabase.isCI,
                   "PFC_TEST_DATABASE_URL not set: PostgreSQL cases skipped (run under scripts/with-postgres.sh)"))
    func postgresIsReachable() throws {
        guard let url = TestDatabase.postgresURL else {
            Issue.record("CI=true but PFC_TEST_DATABASE_URL is not set")
            return
        }
        let store = try PostgresStore(configuration: .init(url: url, poolSize: 1))
        #expect(store.backend == .postgres)
    }

    @Test(arguments: TestDatabase.backends)
    func rolledBackTransactionLeavesNothing(backend: Backend) throws {
        struct Abort: Error {}
        try TestDatabase.withStore(backend) { store in
            let tenant = Tenant(name: "rollback")
            let model = Model(tenantID: tenant.id, name: "m", kind: "pfc", architecture: "{}")
            let job = Job(tenantID: tenant.id, kind: "train")
            var sawModelInside = false
            do {
                try store.transaction { tx in
                    try tx.insert(tenant)
                    try tx.insert(model)
                    _ = try tx.appendModelVersion(modelID: model.id, tenantID: tenant.id, parentVersion: nil, reason: .create, weights: Data([1, 2, 3]))
                    try tx.enqueue(job)
                    sawModelInside = try tx.model(id: model.id, tenantID: tenant.id) == model
                    throw Abort()
                }
                Issue.record("the transaction should have thrown")
            } catch is Abort {}
            #expect(sawModelInside)
            expectStoreError(\.isNotFound) { _ = try store.tenant(id: tenant.id) }
            expectStoreError(\.isNotFound) { _ = try store.model(id: model.id, tenantID: tenant.id) }
            expectStoreError(\.isNotFound) { _ = try store.job(id: job.id, tenantID: tenant.id) }
            let counts = try store.read { session in
                try ["tenants", "models", "model_versions", "jobs"].map { table in
                    try session.connection.queryOne(SQL(stringLiteral: "SELECT count(*) AS n FROM \(table)"))!.int("n")
                }
            }
            #expect(counts == [0, 0, 0, 0])
        }
    }

    @Test(arguments: TestDatabase.backends)
    func hostileStringsRoundTripVerbatim(backend: Backend) throws {
        try TestDatabase.withStore(backend) { store in
            let tenant = try TestDatabase.tenant(store, "'); DROP TABLE tenants; --")
            let hostile = ["'); DROP TABLE models; --", "Robert'); DELETE FROM jobs; --", "$1 $2 ? :name @x",
                           "back\\slash \"quoted\" ''doubled''", "ünïcødé 模型 🧠", "line\nbreak\ttab", ""]
            for name in hostile {
                let model = Model(tenantID: tenant.id, name: name, kind: name, architecture: "{\"note\": \(String(reflecting: name))}")
                try store.insert(model)
                #expect(try store.model(id: model.id, tenantID: tenant.id) == model)
            }
            #expect(try store.models(tenantID: tenant.id).items.map(\.name).sorted() == hostile.sorted())
            #expect(try store.tenant(id: tenant.id).name == "'); DROP TABLE tenants; --")
            expectStoreError(\.isNotFound) { _ = try store.model(id: "' OR '1'='1", tenantID: "' OR '1'='1") }
        }
    }

    @Test(arguments: TestDatabase.backends)
    func uniqueViolationIsConflict(backend: Backend) throws {
        try TestDatabase.withStore(backend) { store in
            let tenant = try TestDatabase.tenant(store)
            expectStoreError(\.isConflict) { try store.insert(tenant) }
            let model = Model(tenantID: tenant.id, name: "m", kind: "pfc", architecture: "{}")
            try store.insert(model)
            try store.insert(ModelVersion(modelID: model.id, version: 1, parentVersion: nil, reason: .create), weights: Data(), tenantID: tenant.id)
            expectStoreError(\.isConflict) {
                try store.insert(ModelVersion(modelID: model.id, version: 1, parentVersion: nil, reason: .train), weights: Data(), tenantID: tenant.id)
            }
            // The failed statement left the store usable.
            #expect(try store.appendModelVersion(modelID: model.id, tenantID: tenant.id, parentVersion: 1, reason: .train, weights: Data()).version == 2)
        }
    }

    /// Two jobs of one model finishing at once on two replicas (found by the soak): the second used to
    /// take the same max + 1 and fail on model_versions' primary key.
    @Test(arguments: TestDatabase.backends)
    func concurrentVersionAppendsGetConsecutiveNumbers(backend: Backend) throws {
        try TestDatabase.withStore(backend) { store in
            let tenant = try TestDatabase.tenant(store)
            let model = Model(tenantID: tenant.id, name: "m", kind: "pfc", architecture: "{}")
            try store.insert(model)
            let appended = DispatchSemaphore(value: 0)
            let other = Mutex<Result<Int, any Error>?>(nil)
            let first = try store.transaction { tx -> Int in
                let v = try tx.appendModelVersion(modelID: model.id, tenantID: tenant.id, parentVersion: nil, reason: .train, weights: Data())
                Thread.detachNewThread {
                    appended.signal()
                    let r = Result { try store.appendModelVersion(modelID: model.id, tenantID: tenant.id, parentVersion: nil, reason: .train, weights: Data()).version }
                    other.withLock { $0 = r }
                }
                appended.wait()
                Thread.sleep(forTimeInterval: 0.5)  // the other append runs (or waits) while this one is uncommitted
                return v.version
            }
            let end = Date().addingTimeInterval(30)
            while Date() < end, other.withLock({ $0 }) == nil { Thread.sleep(forTimeInterval: 0.05) }
            let second = try #require(other.withLock { $0 })
            #expect(try second.get() == first + 1)
            #expect(try store.modelVersions(modelID: model.id, tenantID: tenant.id).items.map(\.version) == [first, first + 1])
        }
    }

    @Test(arguments: TestDatabase.backends)
    func tenantsOnlySeeTheirOwnRecords(backend: Backend) throws {
        try TestDatabase.withStore(backend) { store in
            let alice = try TestDatabase.tenant(store, "alice"), bob = try TestDatabase.tenant(store, "bob")
            let datasets = (0..<5).map { Dataset(tenantID: alice.id, name: "d\($0)", examples: 10, features: 4, classes: 2) }
            try store.transaction { tx in for dataset in datasets { try tx.insert(dataset) } }
            #expect(try store.dataset(id: datasets[0].id, tenantID: alice.id) == datasets[0])
            expectStoreError(\.isNotFound) { _ = try store.dataset(id: datasets[0].id, tenantID: bob.id) }
            expectStoreError(\.isNotFound) { try store.deleteDataset(id: datasets[0].id, tenantID: bob.id) }
            #expect(try store.datasets(tenantID: bob.id).items.isEmpty)
            let first = try store.datasets(tenantID: alice.id, page: PageRequest(limit: 2))
            let last = try store.datasets(tenantID: alice.id, page: PageRequest(limit: 2, offset: 4))
            #expect(first.items.count == 2 && first.nextOffset == 2 && last.items.count == 1 && last.nextOffset == nil)
            let model = Model(tenantID: alice.id, name: "m", kind: "pfc", architecture: "{}")
            try store.insert(model)
            expectStoreError(\.isNotFound) {
                _ = try store.appendModelVersion(modelID: model.id, tenantID: bob.id, parentVersion: nil, reason: .create, weights: Data())
            }
        }
    }

    @Test(arguments: TestDatabase.backends)
    func apiKeysAreStoredHashedAndFoundBySecret(backend: Backend) throws {
        try TestDatabase.withStore(backend) { store in
            let tenant = try TestDatabase.tenant(store)
            let secret = APIKey.generateSecret()
            let key = APIKey(tenantID: tenant.id, secret: secret, label: "ci")
            try store.insert(key)
            #expect(key.keySHA256.count == 64 && !key.keySHA256.contains(secret))
            #expect(try store.tenant(forAPIKey: secret) == tenant)
            #expect(try store.tenant(forAPIKey: secret + "x") == nil)
            #expect(try store.apiKeys(tenantID: tenant.id) == [key])
            try store.revokeAPIKey(id: key.id, tenantID: tenant.id)
            #expect(try store.tenant(forAPIKey: secret) == nil)
        }
    }

    @Test(arguments: TestDatabase.backends)
    func datasetSequenceFormRoundTrips(backend: Backend) throws {
        try TestDatabase.withStore(backend) { store in
            let tenant = try TestDatabase.tenant(store)
            let sequence = Dataset(tenantID: tenant.id, name: "copy", examples: 3, features: 25 * 12, classes: 10,
                                   sequenceLength: 25, stepFeatures: 12, labelsPerExample: 25, minFeature: -0.25,
                                   createdAt: Date(timeIntervalSince1970: 1_700_000_000))
            let flat = Dataset(tenantID: tenant.id, name: "flat", examples: 3, features: 64, classes: 10,
                               createdAt: Date(timeIntervalSince1970: 1_700_000_001))
            try store.insert(sequence)
            try store.insert(flat)
            let back = try store.dataset(id: sequence.id, tenantID: tenant.id)
            #expect(back.sequenceLength == 25 && back.stepFeatures == 12 && back.labelsPerExample == 25 && back.minFeature == -0.25)
            let flatBack = try store.dataset(id: flat.id, tenantID: tenant.id)
            #expect(flatBack.sequenceLength == nil && flatBack.stepFeatures == nil && flatBack.labelsPerExample == 1 && flatBack.minFeature == nil)
            #expect(try store.datasets(tenantID: tenant.id).items.map(\.labelsPerExample) == [25, 1])
        }
    }

    @Test(arguments: TestDatabase.backends)
    func datasetInUseCannotBeDeleted(backend: Backend) throws {
        try TestDatabase.withStore(backend) { store in
            let tenant = try TestDatabase.tenant(store)
            let dataset = Dataset(tenantID: tenant.id, name: "d", examples: 1, features: 1, classes: 1, imageShape: "[28,28,1]")
            try store.insert(dataset)
            _ = try store.writeDatasetBlob(datasetID: dataset.id, tenantID: tenant.id, chunks: [Data([1, 2, 3])])
            let job = Job(tenantID: tenant.id, kind: "train", datasetID: dataset.id)
            try store.enqueue(job)
            #expect(try store.activeJobCount(datasetID: dataset.id) == 1)
            expectStoreError(\.isConflict) { try store.deleteDataset(id: dataset.id, tenantID: tenant.id) }
            _ = try store.cancelJob(id: job.id, tenantID: tenant.id)
            try store.deleteDataset(id: dataset.id, tenantID: tenant.id)
            expectStoreError(\.isNotFound) { _ = try store.dataset(id: dataset.id, tenantID: tenant.id) }
            #expect(try store.read { try $0.connection.queryOne("SELECT count(*) AS n FROM dataset_blobs")!.int("n") } == 0)
        }
    }

    @Test(arguments: TestDatabase.backends)
    func trainingResultCommitsInOneTransaction(backend: Backend) throws {
        try TestDatabase.withStore(backend) { store in
            let tenant = try TestDatabase.tenant(store)
            let model = Model(tenantID: tenant.id, name: "mnist", kind: "pfc", architecture: "{\"blocks\":[64,32]}")
            try store.insert(model)
            let v1 = try store.appendModelVersion(modelID: model.id, tenantID: tenant.id, parentVersion: nil, reason: .create, weights: Data([0]))
            try store.enqueue(Job(tenantID: tenant.id, kind: "train", modelID: model.id))
            let job = try #require(try store.claimJob(owner: "worker-1", leaseDuration: 60))
            let weights = Data((0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 31) })
            let ledger = (0..<3).map { LedgerEntry(modelID: model.id, version: 2, task: 0, epoch: 0, batchIndex: $0,
                                                   examples: Data([UInt8($0), 9]), windows: [ColumnRange(0..<16), ColumnRange(0..<8)]) }
            let components = (0..<4).map { Component(modelID: model.id, version: 2, block: $0 / 2, column: $0 % 2,
                                                     provenance: try! JSONColumn(["task": 0]), norms: try! JSONColumn(["l2": 1.5])) }
            let v2 = try store.transaction { tx in
                let version = try tx.appendModelVersion(modelID: model.id, tenantID: tenant.id, parentVersion: v1.version,
                                                        reason: .train, metrics: try JSONColumn(["accuracy": 0.97]), weights: weights)
                try tx.appendLedger(ledger, tenantID: tenant.id)
                try tx.upsertComponents(components, tenantID: tenant.id)
                try tx.completeJob(id: job.id, owner: "worker-1", result: try JSONColumn(["version": 2]))
                return version
            }
            #expect(v2.version == 2 && v2.parentVersion == 1)
            #expect(try store.latestModelVersion(modelID: model.id, tenantID: tenant.id) == v2)
            #expect(try store.modelVersion(modelID: model.id, version: 1, tenantID: tenant.id) == v1)
            #expect(try store.modelWeights(modelID: model.id, version: 2, tenantID: tenant.id) == weights)
            #expect(try store.modelVersions(modelID: model.id, tenantID: tenant.id).items == [v1, v2])
            #expect(try store.ledgerEntries(modelID: model.id, tenantID: tenant.id) == ledger)
            #expect(try store.ledgerEntries(modelID: model.id, tenantID: tenant.id, throughVersion: 1).isEmpty)
            #expect(try store.components(modelID: model.id, version: 2, tenantID: tenant.id) == components)
            var reset = components[1]
            reset.state = .reset
            try store.upsertComponents([reset], tenantID: tenant.id)
            #expect(try store.components(modelID: model.id, version: 2, tenantID: tenant.id, block: 0)[1].state == .reset)
            let done = try store.job(id: job.id, tenantID: tenant.id)
            #expect(try done.state == .succeeded && done.result?.decode([String: Int].self) == ["version": 2] && done.leaseOwner == nil && done.finishedAt != nil)

            let analysis = Analysis(tenantID: tenant.id, modelID: model.id, modelVersion: 2, kind: "diagonal")
            try store.insert(analysis)
            let parts = (0..<2).map { AnalysisComponent(analysisID: analysis.id, index: $0, pseudoFisher: Data([UInt8($0)]),
                                                        coefficients: $0 == 0 ? nil : Data([7]), topExamples: "[1,2]") }
            try store.insert(parts, tenantID: tenant.id)
            try store.updateAnalysis(id: analysis.id, tenantID: tenant.id, state: "ready", summary: "{\"components\":2}")
            #expect(try store.analysis(id: analysis.id, tenantID: tenant.id).state == "ready")
            #expect(try store.analysisComponents(analysisID: analysis.id, tenantID: tenant.id) == parts)
            #expect(try store.analysisComponent(analysisID: analysis.id, index: 1, tenantID: tenant.id) == parts[1])
            #expect(try store.analyses(tenantID: tenant.id, modelID: model.id).items.count == 1)
            try store.deleteModel(id: model.id, tenantID: tenant.id)
            expectStoreError(\.isNotFound) { _ = try store.analysis(id: analysis.id, tenantID: tenant.id) }
        }
    }
}
