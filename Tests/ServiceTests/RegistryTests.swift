import Foundation
import Testing
import TestSupport
@testable import PFC
@testable import Service
@testable import Storage

/// One version, weight export (.pfc and safetensors) and import, over real sockets on both stores.
@Suite(.serialized) struct RegistryTests {
    static func digits(limit: Int = 400) throws -> (rows: [[Double]], labels: [Int]) {
        let text = try String(contentsOf: ServiceHarness.fixture("digits_train.csv"), encoding: .utf8)
        var rows: [[Double]] = [], labels: [Int] = []
        for line in text.split(separator: "\n").dropFirst().prefix(limit) {
            let f = line.split(separator: ",").map { Double($0)! }
            labels.append(Int(f[0]))
            rows.append(Array(f.dropFirst()))
        }
        return (rows, labels)
    }

    /// A small trained model (version 1) and the rows it was trained on.
    static func trainedModel(_ h: ServiceHarness, kind: String = "pfc") throws -> (id: String, rows: [[Double]]) {
        let c = h.client
        let (rows, labels) = try digits()
        let ds = checked(try c.json("POST", "/v1/datasets", ["name": "reg", "features": rows, "labels": labels]), "POST", "/v1/datasets")
        var spec: [String: Any] = ["name": "exported digits", "kind": kind, "input_dim": 64, "output_dim": 10, "basis": 16, "iterations": 12]
        if kind == "mlp" { spec["basis"] = nil; spec["hidden"] = 16; spec["iterations"] = nil }
        let m = checked(try c.json("POST", "/v1/models", spec), "POST", "/v1/models")
        let id = m.object["id"] as! String
        let job = checked(try c.json("POST", "/v1/models/\(id)/train", ["dataset_id": ds.object["id"] as! String, "epochs": 2,
                                                                        "learning_rate": 0.003, "validation_fraction": 0]), "POST", "/v1/models/{id}/train")
        let done = try h.waitForJob(job.object["id"] as! String)
        #expect(done["state"] as? String == "succeeded", "\(done)")
        return (id, rows)
    }

    static func predict(_ h: ServiceHarness, _ id: String, _ rows: [[Double]]) throws -> [[Double]] {
        let r = checked(try h.client.json("POST", "/v1/models/\(id)/predict", ["inputs": Array(rows.prefix(20)), "top": 1]), "POST", "/v1/models/{id}/predict")
        #expect(r.status == 200, "\(r.text)")
        return (r.object["outputs"] as? [[Double]]) ?? []
    }

    func modelCount(_ h: ServiceHarness) throws -> Int {
        try h.store.models(tenantID: try h.tenantID(), page: PageRequest(limit: 1000, offset: 0)).items.count
    }

    @Test(arguments: Backend.all)
    func exportAndImportRoundTripBitExact(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            let c = h.client
            for kind in ["pfc", "mlp"] {
                let (id, rows) = try Self.trainedModel(h, kind: kind)
                let stored = Array(try h.store.modelWeights(modelID: id, version: 1, tenantID: try h.tenantID()))

                let pfc = checked(try c.request("GET", "/v1/models/\(id)/versions/1/weights"), "GET", "/v1/models/{id}/versions/{v}/weights")
                #expect(pfc.status == 200 && pfc.header("Content-Type") == "application/octet-stream")
                #expect(Array(pfc.body) == stored, "the .pfc download is the stored file")
                #expect(pfc.header("Content-Disposition") == "attachment; filename=\"exported_digits-v1.pfc\"")

                let st = checked(try c.request("GET", "/v1/models/\(id)/versions/1/weights", headers: [("Accept", "application/x-safetensors")]),
                                 "GET", "/v1/models/{id}/versions/{v}/weights")
                #expect(st.status == 200 && st.header("Content-Type") == "application/x-safetensors")
                let viaQuery = try c.request("GET", "/v1/models/\(id)/versions/1/weights?format=safetensors")
                #expect(viaQuery.body == st.body)
                // The safetensors file holds the same floats as the model file.
                let (arch, params) = try ModelFile.decodeParts(stored)
                let (arch2, params2) = try SafetensorsFile.decodeParts(Array(st.body))
                #expect(arch == arch2 && params == params2)

                let original = try Self.predict(h, id, rows)
                for (body, type) in [(pfc.body, "application/octet-stream"), (st.body, "application/x-safetensors")] {
                    let imported = checked(try c.request("POST", "/v1/models/import?name=back", body: body, contentType: type), "POST", "/v1/models/import")
                    #expect(imported.status == 201, "\(imported.text)")
                    let newID = imported.object["id"] as! String
                    #expect(imported.object["version"] as? Int == 1)
                    #expect(imported.header("Location") == "/v1/models/\(newID)")
                    // Identical predictions, and export → import → export is bit-exact in both formats.
                    #expect(try Self.predict(h, newID, rows) == original)
                    let again = try c.request("GET", "/v1/models/\(newID)/versions/1/weights")
                    #expect(Array(again.body) == stored)
                    let againST = try c.request("GET", "/v1/models/\(newID)/versions/1/weights?format=safetensors")
                    #expect(againST.body == st.body)
                    let version = checked(try c.request("GET", "/v1/models/\(newID)/versions/1"), "GET", "/v1/models/{id}/versions/{v}")
                    #expect(version.object["reason"] as? String == "import")
                    #expect(version.object["version"] as? Int == 1)
                    #expect(arch.kind.rawValue == (imported.object["kind"] as? String ?? ""))
                }
            }
        }
    }

    @Test(arguments: Backend.all)
    func badModelFilesAreRefusedAndNothingIsStored(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            let c = h.client
            let (id, _) = try Self.trainedModel(h)
            let pfc = Array(try c.request("GET", "/v1/models/\(id)/versions/1/weights").body)
            let st = Array(try c.request("GET", "/v1/models/\(id)/versions/1/weights?format=safetensors").body)
            let before = try modelCount(h)

            func refused(_ body: [UInt8], _ type: String = "application/octet-stream", status: Int = 422, mentioning: String) throws {
                let r = checked(try c.request("POST", "/v1/models/import", body: Data(body), contentType: type), "POST", "/v1/models/import")
                #expect(r.status == status, "\(mentioning): \(r.status) \(r.text)")
                #expect(r.errorMessage.contains(mentioning), "\(r.errorMessage) should mention \(mentioning)")
            }
            try refused([], mentioning: "empty")
            try refused(Array(pfc.prefix(pfc.count / 2)), mentioning: "truncated")
            var flipped = pfc; flipped[pfc.count / 2] ^= 0x40
            try refused(flipped, mentioning: "checksum")
            try refused(Array("hello, not a model".utf8), mentioning: "neither")
            try refused(Array(st.prefix(st.count - 8)), "application/x-safetensors", mentioning: "data_offsets")
            try refused(pfc, "application/x-safetensors", mentioning: "says safetensors")
            try refused(pfc, "text/csv", status: 415, mentioning: "not accepted")

            // A safetensors header that lies: a wider basis than the weights hold, and a shape that
            // does not match its byte range.
            let headerLength = Int(st[0..<8].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
            let header = String(decoding: st[8..<(8 + headerLength)], as: UTF8.self)
            func withHeader(_ text: String) -> [UInt8] {
                var json = Array(text.utf8)
                while json.count % 8 != 0 { json.append(0x20) }
                var out = [UInt8]()
                withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
                return out + json + st[(8 + headerLength)...]
            }
            #expect(header.contains("\\\"basis\\\":16"), "\(header)")
            try refused(withHeader(header.replacingOccurrences(of: "\\\"basis\\\":16", with: "\\\"basis\\\":17")), mentioning: "weights")
            try refused(withHeader(header.replacingOccurrences(of: "\"shape\":[64,16]", with: "\"shape\":[16,64]")), mentioning: "fit its architecture")
            try refused(withHeader(header.replacingOccurrences(of: "\"shape\":[64,16]", with: "\"shape\":[64,17]")), mentioning: "does not match")
            try refused(withHeader(header.replacingOccurrences(of: "\"F32\"", with: "\"F16\"")), mentioning: "only F32")
            // An architecture over the service's limits is refused before anything is allocated.
            try refused(withHeader(header.replacingOccurrences(of: "\\\"basis\\\":16", with: "\\\"basis\\\":100000000")), mentioning: "weights")
            var huge = [UInt8](repeating: 0, count: 16)
            withUnsafeBytes(of: UInt64(1 << 40).littleEndian) { huge.replaceSubrange(0..<8, with: $0) }
            huge[8] = UInt8(ascii: "{")
            try refused(huge, mentioning: "neither")

            // Weights that are not finite (a valid file otherwise), and an architecture JSON far past any
            // real one (refused before it is parsed).
            let (arch, params) = try ModelFile.decodeParts(pfc)
            var poisoned = params
            poisoned[0].value.storage[0] = .nan
            try refused(ModelFile.encode(architecture: arch, parameters: poisoned), mentioning: "not finite")
            var long = ModelFile.magic
            for v in [ModelFile.formatVersion, 100_000] { withUnsafeBytes(of: v.littleEndian) { long.append(contentsOf: $0) } }
            long += [UInt8](repeating: 0x20, count: 100_000) + [0, 0, 0, 0]
            withUnsafeBytes(of: CRC32.checksum(long).littleEndian) { long.append(contentsOf: $0) }
            try refused(long, mentioning: "architecture JSON of 100000 bytes")
            // A signed-weight kind whose architecture claims non-negative weights (creation refuses it too).
            let mlp = NetworkFactory.make(Architecture(kind: .mlp, inputDim: 2, outputDim: 2, basis: 3, iterations: 1), seed: 1)
            var claimed = Array(ModelFile.encode(mlp).dropLast(4))
            let from = Array("\"nonnegative\":false".utf8), to = Array("\"nonnegative\":true ".utf8)  // same length
            let at = try #require((0...(claimed.count - from.count)).first { Array(claimed[$0..<($0 + from.count)]) == from })
            claimed.replaceSubrange(at..<(at + from.count), with: to)
            withUnsafeBytes(of: CRC32.checksum(claimed).littleEndian) { claimed.append(contentsOf: $0) }
            try refused(claimed, mentioning: "signed weights")

            #expect(try modelCount(h) == before, "a refused import stores nothing")
            let health = try c.request("GET", "/healthz", auth: false)
            #expect(health.status == 200)
        }
    }

    @Test(arguments: Backend.all)
    func versionsAreReadOneByOneAndStayWithTheirTenant(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            let c = h.client
            let (id, _) = try Self.trainedModel(h)
            let v0 = checked(try c.request("GET", "/v1/models/\(id)/versions/0"), "GET", "/v1/models/{id}/versions/{v}")
            #expect(v0.status == 200 && v0.object["reason"] as? String == "create" && v0.object["parent_version"] is NSNull)
            let v1 = checked(try c.request("GET", "/v1/models/\(id)/versions/1"), "GET", "/v1/models/{id}/versions/{v}")
            #expect(v1.status == 200 && v1.object["reason"] as? String == "train" && v1.object["parent_version"] as? Int == 0)
            #expect(checked(try c.request("GET", "/v1/models/\(id)/versions/7"), "GET", "/v1/models/{id}/versions/{v}").status == 404)
            let bad = checked(try c.request("GET", "/v1/models/\(id)/versions/x1"), "GET", "/v1/models/{id}/versions/{v}")
            #expect(bad.status == 400 && bad.errorMessage.contains("version"))
            let badFormat = checked(try c.request("GET", "/v1/models/\(id)/versions/1/weights?format=onnx"), "GET", "/v1/models/{id}/versions/{v}/weights")
            #expect(badFormat.status == 400 && badFormat.errorMessage.contains("format"))

            let other = try h.otherTenantClient()
            #expect(try other.request("GET", "/v1/models/\(id)/versions/1").status == 404)
            #expect(try other.request("GET", "/v1/models/\(id)/versions/1/weights").status == 404)
        }
    }
}
