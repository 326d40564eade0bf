// Issue 15, the authenticated model read: `GET /v1/models/{id}` reads the row and latest version in
// one statement and reuses the encoded body while they are unchanged (`ModelBodyCache`). The body
// must equal the uncached encoding byte for byte, and every change — a rename or architecture change
// straight in the database, a new version, a deletion, through this service, through a second
// service on the same database, or behind both — shows on the very next read (there is no staleness
// bound: the database is read on every request). Over real sockets on both stores.
import Foundation
import Testing
@testable import HTTP
@testable import Service
@testable import Storage
import TestSupport

@Suite struct ModelReadCacheTests {
    static let validator = Result { try OpenAPIValidator() }  // parsed once: Yams is slow

    /// Creates a model through the API; its id.
    static func createModel(_ c: TestClient, _ body: [String: Any] = ["name": "m", "kind": "pfc", "input_dim": 4, "output_dim": 2, "basis": 6]) throws -> String {
        let r = try c.json("POST", "/v1/models", body)
        guard r.status == 201, let id = r.object["id"] as? String else { throw HarnessError("create: \(r.status) \(r.text)") }
        return id
    }

    /// The body the route wrote before the cache: `modelDTO` over `store.read`, through `JSONCoding.response`.
    static func uncachedBody(_ h: ServiceHarness, _ id: String, tenant: String) throws -> [UInt8] {
        let response = try JSONCoding.response(try h.store.read { s in try h.service.modelDTO(try s.model(id: id, tenantID: tenant), session: s) })
        guard case .bytes(let bytes) = response.body else { throw HarnessError("not a bytes body") }
        return bytes
    }

    /// GETs the model and checks the answer against the contract.
    static func get(_ c: TestClient, _ id: String) throws -> TestResponse {
        let r = try c.request("GET", "/v1/models/\(id)")
        let problems = try validator.get().problems(method: "GET", path: "/v1/models/\(id)", status: r.status,
                                                    contentType: r.header("Content-Type"), body: r.body)
        #expect(problems.isEmpty, "\(problems)")
        return r
    }

    static func rawUpdate(_ store: any Store, _ statement: SQL) throws {
        let changed = try store.transaction { s in try s.connection.execute(statement) }
        #expect(changed == 1)
    }

    @Test(arguments: Backend.all)
    func theBodyEqualsTheUncachedEncodingByteForByte(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            let tenant = try h.tenantID()
            let models = [
                try Self.createModel(h.client),
                try Self.createModel(h.client, ["name": "ä \"quoted\" \\ name", "kind": "factorized_rnn", "input_dim": 3, "output_dim": 2,
                                                "hidden": 5, "sequence_length": 4, "label_loss_weight": 0.3, "seed": 7]),
                try Self.createModel(h.client, ["name": "mlp", "kind": "mlp", "input_dim": 4, "output_dim": 3, "basis": 8, "loss": "cross_entropy"]),
            ]
            for id in models {
                let first = try Self.get(h.client, id), second = try Self.get(h.client, id), third = try Self.get(h.client, id)
                #expect(first.status == 200 && second.status == 200 && third.status == 200, "\(first.text)")
                let uncached = try Self.uncachedBody(h, id, tenant: tenant)
                #expect(Array(first.body) == uncached, "first read: \(first.text) vs \(String(decoding: uncached, as: UTF8.self))")
                #expect(Array(second.body) == uncached && Array(third.body) == uncached, "cached reads: \(second.text)")
                #expect(second.header("Content-Type") == "application/json")
                #expect(first.object["id"] as? String == id && first.object["version"] as? Int == 0)
            }
        }
    }

    @Test(arguments: Backend.all)
    func aChangeStraightInTheDatabaseShowsOnTheNextRead(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            let tenant = try h.tenantID()
            let id = try Self.createModel(h.client)
            #expect(try Self.get(h.client, id).object["name"] as? String == "m")
            #expect(try Self.get(h.client, id).object["name"] as? String == "m")

            try Self.rawUpdate(h.store, "UPDATE models SET name = \("renamed") WHERE id = \(id)")
            let renamed = try Self.get(h.client, id)
            #expect(renamed.object["name"] as? String == "renamed")
            #expect(Array(renamed.body) == (try Self.uncachedBody(h, id, tenant: tenant)))

            // The architecture as a continual task that grew the basis rewrites it.
            var spec = try h.service.spec(of: try h.store.model(id: id, tenantID: tenant))
            spec.architecture.basis = 9
            let text = String(decoding: try JSONCoding.encoder.encode(spec), as: UTF8.self)
            try h.store.updateModelArchitecture(modelID: id, tenantID: tenant, architecture: text)
            #expect(try Self.get(h.client, id).object["basis"] as? Int == 9)

            // A new version, as a job on another replica appends it.
            _ = try h.store.appendModelVersion(modelID: id, tenantID: tenant, parentVersion: 0, reason: .train, weights: Data([1, 2, 3]))
            let bumped = try Self.get(h.client, id)
            #expect(bumped.object["version"] as? Int == 1 && bumped.object["basis"] as? Int == 9 && bumped.object["name"] as? String == "renamed")
            #expect(Array(bumped.body) == (try Self.uncachedBody(h, id, tenant: tenant)))

            try h.store.deleteModel(id: id, tenantID: tenant)
            let gone = try Self.get(h.client, id)
            #expect(gone.status == 404 && gone.errorCode == "not_found", "\(gone.text)")
        }
    }

    @Test(arguments: Backend.all)
    func aSecondServiceOnTheSameDatabaseSeesTheOthersWritesAtOnce(backend: Backend) throws {
        let location = HarnessLocation(backend)
        defer { location.destroy() }
        let first = try ServiceHarness(location)
        defer { first.stop() }
        let second = try ServiceHarness(location, key: first.key)
        defer { second.stop() }
        let tenant = try first.tenantID()
        let id = try Self.createModel(first.client, ["name": "shared", "kind": "pfc", "input_dim": 2, "output_dim": 2, "basis": 4, "iterations": 5])
        // Both services have the body of version 0.
        #expect(try Self.get(first.client, id).object["version"] as? Int == 0)
        #expect(try Self.get(second.client, id).object["version"] as? Int == 0)

        // Train through the second service: its job appends version 1.
        let csv = Data((0..<20).map { i in "\(i % 2),\(Double(i % 3) / 3),\(Double(i % 5) / 5)" }.joined(separator: "\n").utf8)
        let upload = try second.client.request("POST", "/v1/datasets?name=tiny", body: csv, contentType: "text/csv")
        #expect(upload.status == 201, "\(upload.text)")
        let dataset = try #require(upload.object["id"] as? String)
        let job = try second.client.json("POST", "/v1/models/\(id)/train", ["dataset_id": dataset, "epochs": 1, "learning_rate": 0.01])
        #expect(job.status == 202, "\(job.text)")
        let done = try second.waitForJob(try #require(job.object["id"] as? String), timeout: 120)
        #expect(done["state"] as? String == "succeeded", "\(done)")
        let trained = try Self.get(first.client, id)
        #expect(trained.object["version"] as? Int == 1, "the first service sees the second's version at once: \(trained.text)")
        #expect(Array(trained.body) == (try Self.uncachedBody(first, id, tenant: tenant)))
        #expect(try Self.get(second.client, id).object["version"] as? Int == 1)

        // Delete through the second service's API: the first answers 404 on its next read.
        #expect(try second.client.request("DELETE", "/v1/models/\(id)").status == 204)
        #expect(try Self.get(first.client, id).status == 404)
        #expect(try Self.get(second.client, id).status == 404)
    }

    @Test(arguments: Backend.all)
    func anotherTenantsModelIsStill404AfterItsOwnerReadIt(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            let id = try Self.createModel(h.client)
            for _ in 0..<3 { #expect(try Self.get(h.client, id).status == 200) }
            let other = try h.otherTenantClient()
            let refused = try Self.get(other, id)
            #expect(refused.status == 404 && refused.errorCode == "not_found", "\(refused.text)")
            #expect(!refused.text.contains("\"name\":\"m\""))
            #expect(try other.request("DELETE", "/v1/models/\(id)").status == 404)
            #expect(try Self.get(h.client, id).status == 200, "the owner's model is untouched")
            #expect(try Self.get(h.client, "no-such-model").status == 404)
        }
    }

    // MARK: - The cache's own rules

    static func source(_ id: String, name: String = "m", version: Int = 0) -> ModelBodyCache.Source {
        .init(model: Model(id: id, tenantID: "t", name: name, kind: "pfc", architecture: "{}", createdAt: Date(timeIntervalSince1970: 0)),
              latestVersion: version)
    }

    @Test func aBodyIsReusedOnlyForTheExactRowItWasMadeFrom() throws {
        let cache = ModelBodyCache(capacity: 8)
        var encodes = 0
        func body(_ s: ModelBodyCache.Source) throws -> [UInt8] {
            try cache.body(for: s) { s in encodes += 1; return Array("\(s.model.name) v\(s.latestVersion) #\(encodes)".utf8) }
        }
        let a = try body(Self.source("a"))
        #expect(try body(Self.source("a")) == a && encodes == 1)
        #expect(String(decoding: try body(Self.source("a", name: "b")), as: UTF8.self) == "b v0 #2")
        #expect(String(decoding: try body(Self.source("a", name: "b", version: 1)), as: UTF8.self) == "b v1 #3")
        var otherTenant = Self.source("a", name: "b", version: 1)
        otherTenant.model.tenantID = "u"
        #expect(String(decoding: try body(otherTenant), as: UTF8.self) == "b v1 #4")
        #expect(cache.hitsAndMisses.hits == 1 && cache.hitsAndMisses.misses == 4)
        cache.evict(modelID: "a")
        #expect(cache.count == 0)
    }

    @Test func theTableStaysBounded() throws {
        let cache = ModelBodyCache(capacity: 100)
        for n in 0..<5000 {
            let b = try cache.body(for: Self.source("m\(n)")) { Array($0.model.id.utf8) }
            #expect(b == Array("m\(n)".utf8))
            if cache.count > 100 { Issue.record("over capacity: \(cache.count)"); break }
        }
        #expect(try cache.body(for: Self.source("m4999")) { _ in Issue.record("evicted"); return [] } == Array("m4999".utf8))
    }
    /// On the embedded store the route runs on the event loop, which reads on a connection of its
    /// own (`SQLiteStore.giveOwnReaders`): with every shared reader held by long reads on other
    /// threads it still answers at once, and sees a change committed meanwhile.
    @Test func onTheEmbeddedStoreTheLoopReadsOnItsOwnConnection() throws {
        try ServiceHarness.with(.sqlite) { h in
            let id = try Self.createModel(h.client)
            #expect(try Self.get(h.client, id).status == 200)
            let tenant = try h.tenantID()  // (reads through the shared readers)
            let release = DispatchSemaphore(value: 0), held = DispatchSemaphore(value: 0), done = DispatchGroup()
            let store = h.store
            for _ in 0..<4 {  // SQLiteStore's default reader pool
                DispatchQueue.global().async(group: done) {
                    _ = try? store.read { _ -> Int in
                        held.signal()
                        _ = release.wait(timeout: .now() + 60)
                        return 0
                    }
                }
            }
            for _ in 0..<4 { #expect(held.wait(timeout: .now() + 10) == .success) }
            defer { for _ in 0..<4 { release.signal() }; done.wait() }
            try Self.rawUpdate(h.store, "UPDATE models SET name = 'renamed' WHERE id = \(id) AND tenant_id = \(tenant)")
            let started = Date()
            let r = try Self.get(h.client, id)
            #expect(r.status == 200 && r.object["name"] as? String == "renamed", "\(r.text)")
            #expect(Date().timeIntervalSince(started) < 5, "waited for a shared reader")
        }
    }
}
