import Foundation
import HTTP
import Linalg
import Testing
import TestSupport
@testable import PFC
@testable import Service
@testable import Storage

/// Requests whose memory used to be unbounded: each size was within its own limit, but together
/// they asked for more than the machine has, and a failed allocation aborts the process for every
/// tenant. `max_working_memory` now bounds a training step's FISTA tape (submit, growth, worker) and
/// an NPEFF analysis's per-example Fisher factors; predictions and uploads check widths before they
/// allocate. Every case runs over a real socket, stores nothing, and the server answers afterwards.
@Suite(.serialized) struct WorkingMemoryTests {
    func alive(_ h: ServiceHarness) throws {
        #expect(try h.client.request("GET", "/healthz", auth: false).status == 200)
        #expect(try h.client.request("GET", "/v1/models").status == 200)
    }

    func dataset(_ h: ServiceHarness, rows: Int) throws -> String {
        let r = try h.client.json("POST", "/v1/datasets", ["name": "d", "features": (0..<rows).map { i in [Double(i % 2), 0.5, 0.25, 1] },
                                                           "labels": (0..<rows).map { $0 % 2 }])
        #expect(r.status == 201, "\(r.text)")
        return r.object["id"] as! String
    }

    func model(_ h: ServiceHarness, basis: Int) throws -> String {
        let r = try h.client.json("POST", "/v1/models", ["name": "m", "kind": "pfc", "input_dim": 4, "output_dim": 2, "basis": basis, "iterations": 100])
        #expect(r.status == 201, "\(r.text)")
        return r.object["id"] as! String
    }

    @Test func theEstimateCountsTheTapeOfEveryIteration() throws {
        let arch = Architecture(kind: .pfc, inputDim: 784, outputDim: 10, basis: 2000, iterations: 100)
        let one = try #require(arch.trainingMemory(batch: 1)), none = try #require(arch.trainingMemory(batch: 0))
        // Z_t and U_t of all N iterations, B×K floats each, are the bulk of a row's share.
        #expect(one - none >= 4 * 2 * 100 * 2000)
        #expect(try #require(arch.trainingMemory(batch: 200)) == none + 200 * (one - none))
        // MNIST at K 2000, N 100, batch 200 (the paper's Split MNIST) fits the default easily; K 5000
        // with N 1000 does not, and sizes past Int are nil rather than a trap.
        #expect(try #require(arch.trainingMemory(batch: 200)) < 1 << 30)
        let big = Architecture(kind: .pfc, inputDim: 1, outputDim: 2, basis: 5000, iterations: 1000)
        #expect(try #require(big.trainingMemory(batch: 100_000)) > ServiceLimits().maxWorkingMemory)
        #expect(Architecture(kind: .pfc, inputDim: .max / 2, outputDim: 2, basis: 5000, iterations: 1000).trainingMemory(batch: .max) == nil)
        var rnn = Architecture(kind: .factorizedRNN, inputDim: 28, outputDim: 10, basis: 512, iterations: 10)
        rnn.sequenceLength = 28
        let step = Architecture(kind: .pfc, inputDim: 28, outputDim: 10, basis: 512, iterations: 10)
        let rnnRow: Int = try #require(rnn.trainingMemory(batch: 1)) - (try #require(rnn.trainingMemory(batch: 0)))
        let stepRow: Int = try #require(step.trainingMemory(batch: 1)) - (try #require(step.trainingMemory(batch: 0)))
        #expect(rnnRow > 28 * stepRow / 2, "one FISTA tape per time step: \(rnnRow) against \(stepRow) per step")
    }

    @Test(arguments: Backend.all)
    func trainingStepsAreHeldToTheMemoryLimit(backend: Backend) throws {
        // 1 MiB: at K 300, N 100 a batch of 2 of these 4-feature rows fits, a batch of 6 does not.
        try ServiceHarness.with(backend, configure: { $0.limits.maxWorkingMemory = 1 << 20 }) { h in
            let c = h.client
            let ds = try dataset(h, rows: 6)
            let m = try model(h, basis: 300)
            for batch in [6, 100_000] { // the batch is at most the dataset: 100 000 counts as 6
                let r = try c.json("POST", "/v1/models/\(m)/train", ["dataset_id": ds, "epochs": 1, "batch_size": batch])
                #expect(r.status == 422 && r.errorMessage.contains("max_working_memory") && r.errorMessage.contains("at most batch_size 2"),
                        "\(r.text)")
                let t = try c.json("POST", "/v1/models/\(m)/tasks", ["name": "t", "dataset_id": ds, "epochs": 1, "batch_size": batch,
                                                                    "validation_fraction": 0])
                #expect(t.status == 422 && t.errorMessage.contains("max_working_memory"), "\(t.text)")
            }
            let tenant = try h.tenantID()
            #expect(try h.store.jobs(tenantID: tenant, page: PageRequest(limit: 10)).items.isEmpty)
            let ok = try c.json("POST", "/v1/models/\(m)/train", ["dataset_id": ds, "epochs": 1, "batch_size": 2])
            #expect(ok.status == 202, "\(ok.text)")
            let trained = try h.waitForJob(ok.object["id"] as! String, timeout: 120)
            #expect(trained["state"] as? String == "succeeded", "\(trained)")

            // A job queued past the limit (by an older server, or before the limit was lowered) fails
            // in the worker with the same message and writes no version.
            let before = try h.store.modelVersions(modelID: m, tenantID: tenant).items.count
            let body = try JSONSerialization.data(withJSONObject: ["dataset_id": ds, "epochs": 1, "batch_size": 6])
            let params = try JSONDecoder().decode(TrainRequest.self, from: body).jobParams(limits: ServiceLimits())
            let job = try Job(tenantID: tenant, modelID: m, params: .train(params))
            try h.store.enqueue(job)
            h.service.workers.wake()
            let failed = try h.waitForJob(job.id, timeout: 60)
            #expect(failed["state"] as? String == "failed" && (failed["error"] as? String ?? "").contains("max_working_memory"), "\(failed)")
            #expect(try h.store.modelVersions(modelID: m, tenantID: tenant).items.count == before)
            try alive(h)
        }
    }

    @Test(arguments: Backend.all)
    func aStreamedTaskIsCheckedAgainAfterItGrowsTheModel(backend: Backend) throws {
        try ServiceHarness.with(backend, configure: { $0.limits.maxWorkingMemory = 1 << 20 }) { h in
            let c = h.client
            let m = try model(h, basis: 10)
            let lines = Data((0..<6).map { #"{"features":[\#($0 % 2),0.5,0.25,1],"label":\#($0 % 2)}"# }.joined(separator: "\n").utf8)
            // At K 10 a batch of 6 fits; the window of 290 columns grows the model to K 290 at the first
            // batch, where the same 6 rows no longer do. Refused then, and nothing is stored.
            let grown = try c.request("POST", "/v1/models/\(m)/tasks/stream?name=s&batch_size=6&window=290&slide=1&grow=true",
                                      body: lines, contentType: "application/x-ndjson")
            #expect(grown.status == 422 && grown.errorMessage.contains("after growing to K = 290")
                    && grown.errorMessage.contains("max_working_memory"), "\(grown.text)")
            let tenant = try h.tenantID()
            #expect(try h.store.modelVersions(modelID: m, tenantID: tenant).items.count == 1)
            let big = try model(h, basis: 300)
            let first = try c.request("POST", "/v1/models/\(big)/tasks/stream?name=s&batch_size=6", body: lines, contentType: "application/x-ndjson")
            #expect(first.status == 422 && first.errorMessage.contains("max_working_memory"), "\(first.text)")
            let fits = try c.request("POST", "/v1/models/\(m)/tasks/stream?name=s&batch_size=6&window=5&slide=0.1", body: lines,
                                     contentType: "application/x-ndjson")
            #expect(fits.status == 201, "\(fits.text)")
            try alive(h)
        }
    }

    @Test(arguments: Backend.all)
    func analysesAreHeldToTheMemoryLimit(backend: Backend) throws {
        try ServiceHarness.with(backend, configure: { $0.limits.maxWorkingMemory = 256 << 10 }) { h in
            let c = h.client
            let ds = try dataset(h, rows: 200)
            let m = try model(h, basis: 30)
            // The defaults (up to 1000 examples, 32 components; top_k all 180) over 200 rows of a model of
            // 180 parameters hold about 0.8 MB; 4 examples, top_k 8 and 2 components about 0.05 MB.
            let r = try c.json("POST", "/v1/models/\(m)/analyses", ["dataset_id": ds, "version": 0, "top_k": 180])
            #expect(r.status == 422 && r.errorMessage.contains("max_working_memory"), "\(r.text)")
            #expect(try h.store.jobs(tenantID: try h.tenantID(), page: PageRequest(limit: 10)).items.isEmpty)
            let small = try c.json("POST", "/v1/models/\(m)/analyses", ["dataset_id": ds, "version": 0, "examples": 4, "top_k": 8,
                                                                        "components": 2, "steps": 5])
            #expect(small.status == 202, "\(small.text)")
            // A gaussian likelihood keeps every output's gradient: counted with all classes.
            let request = try JSONDecoder().decode(AnalysisRequest.self, from: Data(#"{"dataset_id":"x","likelihood":"gaussian"}"#.utf8))
            let softmax = try JSONDecoder().decode(AnalysisRequest.self, from: Data(#"{"dataset_id":"x","class_threshold":0.25}"#.utf8))
            let gaussian = try #require(request.workingMemory(parameters: 1_000_000, classes: 1000, examples: 1, threads: 1))
            let few = try #require(softmax.workingMemory(parameters: 1_000_000, classes: 1000, examples: 1, threads: 1))
            #expect(gaussian >= 4 * 3 * 1000 * 1_000_000 && few < 4 * 3 * 10 * 1_000_000, "\(gaussian) \(few)")
            let tiny = try JSONDecoder().decode(AnalysisRequest.self, from: Data(#"{"dataset_id":"x","class_threshold":1e-30}"#.utf8))
            // 1/class_threshold past Int is no trap: every class may pass such a threshold.
            #expect(tiny.workingMemory(parameters: 1_000_000, classes: 1000, examples: 1, threads: 1) == gaussian)
            #expect(tiny.workingMemory(parameters: .max / 2, classes: 1000, examples: 20_000, threads: 2) == nil)
            try alive(h)
        }
    }

    /// An analysis, fit or perturbation holds the rows it reads beside its Fisher factors: a wide
    /// dataset's rows can pass the limit that the factors alone keep within.
    @Test func analysesCountTheRowsTheyRead() throws {
        let request = try JSONDecoder().decode(AnalysisRequest.self, from: Data(#"{"dataset_id":"x","top_k":8,"components":2}"#.utf8))
        let factors = try #require(request.workingMemory(parameters: 1000, classes: 2, examples: 500, threads: ComputeThreads.count))
        let wide = Dataset(tenantID: "t", name: "wide", examples: 500, features: 100_000, classes: 2)
        #expect(wide.rowsMemory(500) == 2 * 500 * (4 * 100_000 + 8))
        #expect(wide.rowsMemory(Int.max / 2) == nil)
        var limits = ServiceLimits()
        limits.maxWorkingMemory = factors + 1000
        try limits.checkAnalysis(request, parameters: 1000, classes: 2, examples: 500, what: "an analysis")
        #expect(throws: HTTPError.self) {
            try limits.checkAnalysis(request, parameters: 1000, classes: 2, examples: 500, reserved: wide.rowsMemory(500), what: "an analysis")
        }
        #expect(throws: HTTPError.self) {
            try limits.checkAnalysis(request, parameters: 1000, classes: 2, examples: 500, reserved: nil, what: "an analysis")
        }
    }

    @Test(arguments: Backend.all)
    func predictAndUploadsCheckWidthsBeforeTheyAllocate(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            let c = h.client
            // 10⁹ features per example (10 000 steps × 100 000): one empty row used to allocate 4 GB of
            // input matrix before its width was checked, 1000 of them 4 TB (an abort).
            let rnn = try c.json("POST", "/v1/models", ["name": "wide", "kind": "factorized_rnn", "input_dim": 100_000, "output_dim": 2,
                                                        "basis": 10, "iterations": 2, "sequence_length": 10_000])
            #expect(rnn.status == 201, "\(rnn.text)")
            let id = rnn.object["id"] as! String
            let empty = [[Double]](repeating: [], count: 1000)
            let p = try c.json("POST", "/v1/models/\(id)/predict", ["inputs": empty, "version": 0])
            #expect(p.status == 422 && p.errorMessage.contains("inputs[0] has 0 values"), "\(p.text)")
            // A .npy header alone claiming 2³⁰ one-byte features per row: refused at the header,
            // before a 4 GB row buffer, and nothing is stored.
            let header = NpyUploadTests.npy(descr: "|u1", shape: "(1, 1073741000)", data: [])
            let r = try UploadFormatTests.chunkedUpload(c, key: h.key, body: header)
            #expect(r.status == 422 && r.errorMessage.contains("features per row"), "\(r.status) \(r.text)")
            // A scale that turns a byte into +inf is refused (the finite-feature rule of every reader).
            let bytes = NpyUploadTests.npy(descr: "|u1", shape: "(2, 3)", data: [0, 1, 2, 1, 3, 4])
            let huge = try c.request("POST", "/v1/datasets?name=s&scale=1e300", body: bytes, contentType: "application/x-npy")
            #expect(huge.status == 400 && huge.errorMessage.contains("32-bit float"), "\(huge.text)")
            let fine = try c.request("POST", "/v1/datasets?name=s&scale=1/255", body: bytes, contentType: "application/x-npy")
            #expect(fine.status == 201, "\(fine.text)")
            #expect(try h.store.datasets(tenantID: try h.tenantID()).items.count == 1)
            try alive(h)
        }
    }

    /// Rows that straddle the store's 1 MiB chunks (and a content file's pages) read back as the whole
    /// dataset has them: a 3 MB uint8 dataset and a 12 MB float32 one, every row that crosses a chunk
    /// boundary, the first and the last, in a shuffled order with a repeat.
    @Test(arguments: Backend.all)
    func rowsAcrossChunkBoundariesReadAsTheWholeDatasetHasThem(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            let c = h.client, tenant = try h.tenantID()
            let n = 3000, d = 1000
            var u8: [UInt8] = [], f32: [Float] = []
            for r in 0..<n {
                u8.append(UInt8(r % 3)); f32.append(Float(r % 3))
                for j in 0..<d { let v = (r &* 131 &+ j &* 7) % 251; u8.append(UInt8(v)); f32.append(Float(v) / 8) }
            }
            let uploads = [
                (try c.request("POST", "/v1/datasets?name=b&scale=1/255", body: NpyUploadTests.npy(descr: "|u1", shape: "(\(n), \(d + 1))", data: u8),
                               contentType: "application/x-npy"), 20, 1 + d),
                (try c.request("POST", "/v1/datasets?name=f", body: NpyUploadTests.npy(descr: "<f4", shape: "(\(n), \(d + 1))", data: NpyUploadTests.bytes(f32)),
                               contentType: "application/x-npy"), 12, 4 * (1 + d)),
            ]
            for (r, header, rowBytes) in uploads {
                #expect(r.status == 201, "\(r.text)")
                let ds = try h.store.dataset(id: r.object["id"] as! String, tenantID: tenant)
                #expect(ds.byteSize == header + n * rowBytes)
                let straddling = (0..<n).filter { (header + $0 * rowBytes) / datasetChunkSize != (header + ($0 + 1) * rowBytes - 1) / datasetChunkSize }
                #expect(straddling.count >= 2)
                let rows = [n - 1] + straddling.reversed() + [0, straddling[0]]
                let whole = try DatasetBlobReader.load(from: h.store, dataset: ds, tenantID: tenant, classes: 3, limits: ServiceLimits())
                let some = try DatasetBlobReader.load(from: h.store, dataset: ds, tenantID: tenant, classes: 3, rows: rows)
                #expect(some.count == rows.count)
                #expect(some.labels == rows.map { whole.labels[$0] })
                #expect(some.features.storage == rows.flatMap { whole.features.storage[($0 * d)..<(($0 + 1) * d)] })
            }
        }
    }

    /// examples.png and perturbations read only their rows: the same rows, in the asked order (with
    /// repeats), as the whole dataset has, for the byte and the float forms, through the real store.
    @Test(arguments: Backend.all)
    func aFewRowsReadAsTheWholeDatasetHasThem(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            let c = h.client
            let bytes = NpyUploadTests.npy(descr: "|u1", shape: "(5, 4)", data: (0..<20).map { UInt8(($0 * 37) % 251) })
            let u8 = try c.request("POST", "/v1/datasets?name=b&scale=1/255", body: bytes, contentType: "application/x-npy")
            let f32 = try c.request("POST", "/v1/datasets?name=f", body: Data("1,0.5,0.25,2\n0,1,0,3\n1,4,5,6\n0,7,8,9\n1,1,1,1\n".utf8),
                                    contentType: "text/csv")
            let tenant = try h.tenantID()
            for r in [u8, f32] {
                #expect(r.status == 201, "\(r.text)")
                let ds = try h.store.dataset(id: r.object["id"] as! String, tenantID: tenant)
                let whole = try DatasetBlobReader.load(from: h.store, dataset: ds, tenantID: tenant, classes: 2, limits: ServiceLimits())
                #expect(whole.heldBytes == ds.loadedMemory(split: false), "the loaded dataset holds what its record counts")
                let some = try DatasetBlobReader.load(from: h.store, dataset: ds, tenantID: tenant, classes: 2, rows: [3, 0, 3, 99])
                let d = whole.featureCount
                let order = [3, 0, 3]
                let labels: [Int] = order.map { whole.labels[$0] }
                var features: [Float] = []
                for row in order { features += whole.features.storage[(row * d)..<((row + 1) * d)] }
                #expect(some.count == 3)
                #expect(some.labels == labels)
                #expect(some.features.storage == features)
                #expect(throws: HTTPError.self) { try DatasetBlobReader.load(from: h.store, dataset: ds, tenantID: tenant, classes: 2, rows: [5]) }
            }
        }
    }

    /// A training or evaluation job loads its dataset whole (features as floats, labels as Ints) and a
    /// validation split copies it once more: that counts against `max_working_memory` too, beside the
    /// training step. A 1 GiB byte dataset is 4 GB as floats; nothing bounded it before.
    @Test(arguments: Backend.all)
    func datasetsAreHeldToTheMemoryLimitWhenLoaded(backend: Backend) throws {
        let rows = 400
        let stored = Dataset(tenantID: "t", name: "d", examples: rows, features: 4, classes: 2)
        let once = try #require(stored.loadedMemory(split: false)), split = try #require(stored.loadedMemory(split: true))
        #expect(once == rows * (4 * 4 + 8) && split == 2 * once + rows * 24)
        let arch = Architecture(kind: .pfc, inputDim: 4, outputDim: 2, basis: 20, iterations: 100)
        let tape = try #require(arch.trainingMemory(batch: 10))
        // Room for the dataset once and the step; not for the split's copy.
        let limit = once + tape + 64
        #expect(limit < split + tape)
        try ServiceHarness.with(backend, configure: { $0.limits.maxWorkingMemory = limit }) { h in
            let c = h.client
            let ds = try dataset(h, rows: rows)
            let m = try model(h, basis: 20)
            let refused = try c.json("POST", "/v1/models/\(m)/train", ["dataset_id": ds, "epochs": 1, "batch_size": 10, "validation_fraction": 0.2])
            #expect(refused.status == 422 && refused.errorMessage.contains("max_working_memory")
                    && refused.errorMessage.contains("of its dataset"), "\(refused.text)")
            let task = try c.json("POST", "/v1/models/\(m)/tasks", ["name": "t", "dataset_id": ds, "epochs": 1, "batch_size": 10, "grow": true])
            #expect(task.status == 422 && task.errorMessage.contains("max_working_memory"), "\(task.text)")
            let tenant = try h.tenantID()
            #expect(try h.store.jobs(tenantID: tenant, page: PageRequest(limit: 10)).items.isEmpty)
            let ok = try c.json("POST", "/v1/models/\(m)/train", ["dataset_id": ds, "epochs": 1, "batch_size": 10, "validation_fraction": 0])
            #expect(ok.status == 202, "\(ok.text)")
            let trained = try h.waitForJob(ok.object["id"] as! String, timeout: 120)
            #expect(trained["state"] as? String == "succeeded", "\(trained)")
            try alive(h)
        }
        // Below the dataset itself: even evaluating it is refused, at once and as a job.
        try ServiceHarness.with(backend, configure: { $0.limits.maxWorkingMemory = once - 1 }) { h in
            let c = h.client
            let ds = try dataset(h, rows: rows)
            let m = try model(h, basis: 20)
            for body in [["dataset_id": ds, "version": 0], ["dataset_id": ds, "version": 0, "async": true] as [String: Any]] {
                let r = try c.json("POST", "/v1/models/\(m)/evaluate", body)
                #expect(r.status == 422 && r.errorMessage.contains("max_working_memory") && r.errorMessage.contains("\(rows) examples"), "\(r.text)")
            }
            try alive(h)
        }
    }

    /// LRM-NPEFF holds A·Gᵀ densely: one row per example and kept class, one column per component
    /// (and its weighted copy). 20 000 examples of a 200-class gaussian model with 1000 components are
    /// 32 GB of it, although their PEFs are small; the request is refused over a real socket.
    @Test(arguments: Backend.all)
    func lowRankAnalysesCountTheirDenseProducts(backend: Backend) throws {
        let request = try JSONDecoder().decode(AnalysisRequest.self, from: Data(
            #"{"dataset_id":"x","method":"low_rank","likelihood":"gaussian","components":1000,"top_k":1,"steps":1,"examples":20000}"#.utf8))
        let bytes = try #require(request.workingMemory(parameters: 201, classes: 200, examples: 20_000, threads: 2))
        #expect(bytes >= 4 * 2 * 20_000 * 200 * 1000, "\(bytes)")
        var diagonal = request
        diagonal.method = .diagonal
        #expect(try #require(diagonal.workingMemory(parameters: 201, classes: 200, examples: 20_000, threads: 2)) < 1 << 30)
        try ServiceHarness.with(backend) { h in
            let c = h.client
            let rows = 3000  // 3000 × 200 × 1000 × 2 floats: 4.8 GB over the 4 GiB default
            let ds = try c.json("POST", "/v1/datasets", ["name": "w", "features": (0..<rows).map { [Double($0 % 7) / 7] }, "labels": (0..<rows).map { $0 % 200 }])
            #expect(ds.status == 201, "\(ds.text)")
            let m = try c.json("POST", "/v1/models", ["name": "m", "kind": "pfc", "input_dim": 1, "output_dim": 200, "basis": 1, "iterations": 1])
            let r = try c.json("POST", "/v1/models/\(m.object["id"] as! String)/analyses", [
                "dataset_id": ds.object["id"] as! String, "version": 0, "method": "low_rank", "likelihood": "gaussian",
                "examples": rows, "components": 1000, "top_k": 1, "steps": 1])
            #expect(r.status == 422 && r.errorMessage.contains("max_working_memory"), "\(r.text)")
            #expect(try h.store.jobs(tenantID: try h.tenantID(), page: PageRequest(limit: 10)).items.isEmpty)
            try alive(h)
        }
    }

    /// A perturbation (on the handler thread) counts the gradients of every kept class and, for
    /// low_rank, each example's class Gram, not only its forward passes.
    @Test func perturbationsCountTheirGradients() throws {
        let arch = Architecture(kind: .pfc, inputDim: 100, outputDim: 1000, basis: 100, iterations: 10)
        let m = try #require(arch.parameterCount)
        let gaussian = try JSONDecoder().decode(AnalysisRequest.self, from: Data(#"{"dataset_id":"x","likelihood":"gaussian"}"#.utf8))
        let softmax = try JSONDecoder().decode(AnalysisRequest.self, from: Data(#"{"dataset_id":"x","class_threshold":0.25}"#.utf8))
        #expect(gaussian.perturbWork(rows: 1, of: arch, parameters: m) == arch.inferenceWork(rows: 3 * 1000 + 3 + 48))
        #expect(softmax.perturbWork(rows: 1, of: arch, parameters: m) == arch.inferenceWork(rows: 3 * 5 + 3 + 48))
        var lowRank = gaussian
        lowRank.method = .lowRank
        #expect(try #require(lowRank.perturbWork(rows: 10_000, of: arch, parameters: m)) > ServiceLimits().maxPredictWork)
        #expect(lowRank.perturbWork(rows: .max / 2, of: arch, parameters: m) == nil)
    }
}
