import Foundation
import Testing
import TestSupport
@testable import PFC
@testable import Service
@testable import Storage

/// Issue 16's fast uploads: every stored form of a dataset (float32 rows, the compact uint8 rows of a
/// `.npy` `|u1` upload) reads back bit-exactly through the one decode point (`DatasetBlobReader`), old
/// blobs still read, truncated and corrupt bodies store nothing, and the CSV and NDJSON fast paths
/// read every number exactly as `strtof` (CSV) or the JSON decoder (NDJSON) does.
@Suite(.serialized) struct UploadFormatTests {
    /// A deterministic byte stream (64-bit LCG, high bits).
    struct Bytes {
        var state: UInt64
        mutating func next() -> UInt64 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return state >> 11
        }
        mutating func byte() -> UInt8 { UInt8(truncatingIfNeeded: next()) }
    }

    func stored(_ h: ServiceHarness, _ r: TestResponse) throws -> (Dataset, LabeledDataset) {
        let tenant = try h.tenantID()
        let ds = try h.store.dataset(id: r.object["id"] as! String, tenantID: tenant)
        return (ds, try DatasetBlobReader.load(from: h.store, dataset: ds, tenantID: tenant, classes: 1, limits: ServiceLimits()))
    }

    func npy(_ descr: String, rows: Int, columns: Int, _ data: [UInt8]) -> Data {
        NpyUploadTests.npy(descr: descr, shape: "(\(rows), \(columns))", data: data)
    }

    @Test(arguments: Backend.all)
    func everyDtypeRoundTripsBitExactly(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            let c = h.client
            // 3000 rows of 1 + 784 columns: 2.4 MB as uint8, over two 1 MiB blob chunks.
            let rows = 3000, d = 784
            var g = Bytes(state: 16)
            var u8 = [UInt8]()
            u8.reserveCapacity(rows * (d + 1))
            for _ in 0..<rows {
                u8.append(g.byte() % 10)
                for _ in 0..<d { u8.append(g.byte() % 4 == 0 ? g.byte() : 0) }
            }
            func features(_ bytes: [UInt8], _ value: (UInt8) -> Float) -> [Float] {
                var out: [Float] = []
                for r in 0..<rows { for j in 1...d { out.append(value(bytes[r * (d + 1) + j])) } }
                return out
            }
            let labels = (0..<rows).map { Int(u8[$0 * (d + 1)]) }
            let body = npy("|u1", rows: rows, columns: d + 1, u8)
            for (query, scale) in [("", 1.0), ("&scale=1/255", 1.0 / 255), ("&scale=0.1", 0.1)] {
                let r = checked(try c.request("POST", "/v1/datasets?name=u8\(query)", body: body, contentType: "application/x-npy"), "POST", "/v1/datasets")
                #expect(r.status == 201, "\(query): \(r.text)")
                let (ds, got) = try stored(h, r)
                // The compact form: 20 header bytes, then the rows as they came (a quarter of float32).
                #expect(ds.byteSize == 20 + rows * (d + 1), "\(query): \(ds.byteSize) bytes stored")
                #expect(got.labels == labels && got.count == rows && got.featureCount == d)
                let expected: [UInt32] = features(u8) { Float(Double($0) * scale) }.map(\.bitPattern)
                let read: [UInt32] = got.features.storage.map(\.bitPattern)
                #expect(read == expected, "\(query): features differ")
                #expect(ds.minFeature == 0 && ds.classes == 10)
            }

            // float32: bits as sent, including -0, subnormals and large magnitudes; the label a float.
            var f32 = [Float]()
            let specials: [Float] = [-0.0, 1e-45, -3.4e38, 0.1, 1.0 / 3, .leastNormalMagnitude, 7]
            for r in 0..<200 {
                f32.append(Float(r % 7))
                for j in 0..<9 { f32.append(j < specials.count && r % 3 == 0 ? specials[j] : Float(bitPattern: UInt32(truncatingIfNeeded: g.next()) & 0x3FFF_FFFF)) }
            }
            let r32 = checked(try c.request("POST", "/v1/datasets?name=f32", body: npy("<f4", rows: 200, columns: 10, NpyUploadTests.bytes(f32)),
                                            contentType: "application/x-npy"), "POST", "/v1/datasets")
            #expect(r32.status == 201, "\(r32.text)")
            let (ds32, got32) = try stored(h, r32)
            #expect(ds32.byteSize == 12 + 200 * 10 * 4)
            #expect(got32.labels == (0..<200).map { $0 % 7 })
            var sent32: [UInt32] = []
            for r in 0..<200 { for j in 1..<10 { sent32.append(f32[r * 10 + j].bitPattern) } }
            let read32: [UInt32] = got32.features.storage.map(\.bitPattern)
            #expect(read32 == sent32)
            #expect(ds32.minFeature == Double(Float(-3.4e38)))

            // float64 → float32: rounded once (Float(x)), with and without a scale.
            var f64 = [Double]()
            for r in 0..<100 {
                f64.append(Double(r % 3))
                for j in 0..<5 { f64.append(Double(g.next() % 1_000_000) / 997 - Double(j) * 123.456789012345) }
            }
            for (query, scale) in [("", 1.0), ("&scale=2/3", 2.0 / 3)] {
                let r = checked(try c.request("POST", "/v1/datasets?name=f64\(query)", body: npy("<f8", rows: 100, columns: 6, NpyUploadTests.bytes(f64)),
                                              contentType: "application/x-npy"), "POST", "/v1/datasets")
                #expect(r.status == 201, "\(r.text)")
                let (_, got) = try stored(h, r)
                #expect(got.labels == (0..<100).map { $0 % 3 })
                var sent: [UInt32] = []
                for r in 0..<100 { for j in 1..<6 { sent.append(Float(f64[r * 6 + j] * scale).bitPattern) } }
                let read: [UInt32] = got.features.storage.map(\.bitPattern)
                #expect(read == sent)
            }
        }
    }

    /// Training reads a uint8-stored dataset exactly as the same data sent as float32 CSV.
    @Test(arguments: Backend.all)
    func compactDatasetsTrainLikeTheirFloatForm(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            let c = h.client
            var g = Bytes(state: 5)
            var u8 = [UInt8]()
            for i in 0..<60 { u8.append(UInt8(i % 3)); for _ in 0..<8 { u8.append(g.byte()) } }
            let compact = checked(try c.request("POST", "/v1/datasets?name=u8&scale=1/255", body: npy("|u1", rows: 60, columns: 9, u8),
                                                contentType: "application/x-npy"), "POST", "/v1/datasets")
            // %.9g prints a Float so that it reads back as the same Float.
            let csv = (0..<60).map { r in "\(u8[r * 9])," + (1...8).map { String(format: "%.9g", Double(Float(Double(u8[r * 9 + $0]) / 255))) }.joined(separator: ",") }
                .joined(separator: "\n")
            let float = checked(try c.request("POST", "/v1/datasets?name=csv", body: Data(csv.utf8), contentType: "text/csv"), "POST", "/v1/datasets")
            #expect(compact.status == 201 && float.status == 201, "\(compact.text) \(float.text)")
            #expect(try stored(h, compact).1 == stored(h, float).1)
            var answers: [[Double]] = []
            let inputs = (0..<5).map { r in (1...8).map { Double(Float(Double(u8[r * 9 + $0]) / 255)) } }
            for ds in [compact, float] {
                let m = try c.json("POST", "/v1/models", ["name": "m", "kind": "pfc", "input_dim": 8, "output_dim": 3, "basis": 6, "iterations": 5, "seed": 3])
                #expect(m.status == 201, "\(m.text)")
                let model = m.object["id"] as! String
                let job = try c.json("POST", "/v1/models/\(model)/train", ["dataset_id": ds.object["id"] as! String, "epochs": 2, "batch_size": 10, "seed": 0])
                #expect(job.status == 202, "\(job.text)")
                let done = try waitForJob(c, job.object["id"] as! String)
                #expect(done.object["state"] as? String == "succeeded", "\(done.text)")
                let p = try c.json("POST", "/v1/models/\(model)/predict", ["inputs": inputs, "top": 3])
                #expect(p.status == 200, "\(p.text)")
                let explanations = (p.object["explanations"] as? [[[String: Any]]]) ?? []
                answers.append(explanations.flatMap { $0.compactMap { $0["contribution"] as? Double } }
                               + ((p.object["predictions"] as? [Int]) ?? []).map(Double.init))
            }
            #expect(answers[0] == answers[1] && answers[0].count == 5 * 3 + 5, "\(answers)")
        }
    }

    func waitForJob(_ c: TestClient, _ id: String) throws -> TestResponse {
        while true {
            let r = try c.request("GET", "/v1/jobs/\(id)")
            if let state = r.object["state"] as? String, ["succeeded", "failed", "cancelled"].contains(state) { return r }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    /// Blobs written by earlier versions (float32 rows, one label or one per step) and the compact
    /// form all read through the one decoder; a blob of unknown form is refused, not misread.
    @Test(arguments: Backend.all)
    func everyStoredFormReads(backend: Backend) throws {
        let location = HarnessLocation(backend)
        defer { location.destroy() }
        let store = try location.openStore()
        defer { store.close() }
        let tenant = Tenant(name: "t-\(UUID().uuidString.prefix(6))")
        try store.insert(tenant)
        func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
        func blob(_ bytes: [UInt8], examples: Int, features: Int, labels: Int = 1) throws -> LabeledDataset {
            let ds = Dataset(tenantID: tenant.id, name: "old", examples: examples, features: features, classes: 3, labelsPerExample: labels)
            try store.insert(ds)
            _ = try store.writeDatasetBlob(datasetID: ds.id, tenantID: tenant.id, chunks: [Data(bytes)])
            return try DatasetBlobReader.load(from: store, dataset: ds, tenantID: tenant.id, classes: 3, limits: ServiceLimits())
        }
        let v1 = Array("PFCDATA1".utf8) + le(UInt32(2)) + le(Int32(2)) + le(Float(0.5).bitPattern) + le(Float(-1).bitPattern)
            + le(Int32(0)) + le(Float(3).bitPattern) + le(Float(0.25).bitPattern)
        let one = try blob(v1, examples: 2, features: 2)
        #expect(one.labels == [2, 0] && one.features.storage == [0.5, -1, 3, 0.25])
        let v2 = Array("PFCDATA2".utf8) + le(UInt32(1)) + le(UInt32(2)) + le(Int32(1)) + le(Int32(-1)) + le(Float(9).bitPattern)
        let perStep = try blob(v2, examples: 1, features: 1, labels: 2)
        #expect(perStep.labels == [1, -1] && perStep.features.storage == [9] && perStep.labelsPerExample == 2)
        let v3 = Array("PFCDATA3".utf8) + le(UInt32(3)) + le((0.5).bitPattern) + [2, 0, 1, 255, 1, 7, 8, 9]
        let compact = try blob(v3, examples: 2, features: 3)
        #expect(compact.labels == [2, 1] && compact.features.storage == [0, 0.5, 127.5, 3.5, 4, 4.5])
        for bad in [Array("PFCDATA9".utf8) + le(UInt32(1)), Array("PFCDATA3".utf8) + le(UInt32(1)) + le((-1.0).bitPattern) + [0, 0],
                    Array(v1.dropLast(2))] {
            #expect(throws: DatasetBlobError.self) { _ = try blob(bad, examples: 1, features: 1) }
        }
    }

    /// The builder keeps at most one flush buffer in memory, spills the rest, and reads back whole.
    @Test func buildersStayWithinTheirBuffer() throws {
        let flush = 16 << 10
        let d = 100
        var g = Bytes(state: 9)
        let rows = (0..<5000).map { _ in (0...d).map { _ in g.byte() } }
        let bytes = DatasetBuilder(encoding: .uint8(scale: 0.5), flushBytes: flush)
        for start in stride(from: 0, to: rows.count, by: 333) {
            let chunk = rows[start..<min(start + 333, rows.count)].flatMap { $0 }
            try chunk.withUnsafeBytes { try bytes.appendByteRows($0, features: d) }
        }
        let floats = DatasetBuilder(flushBytes: flush)
        for (i, row) in rows.enumerated() {
            try floats.append(label: Int(row[0]), features: row.dropFirst().map { Float(Double($0) * 0.5) }, row: i + 1)
        }
        for builder in [bytes, floats] {
            let read = try builder.withChunks { next in
                var reader = DatasetBlobReader()
                while let chunk = try next() { try reader.consume(chunk) }
                return try reader.finish(classes: 256)
            }
            #expect(builder.peakBuffered <= flush + 4 * (d + 1), "\(builder.peakBuffered) bytes held")
            #expect(builder.spilledBytes > 10 * flush)
            #expect(read.labels == rows.map { Int($0[0]) })
            #expect(read.features.storage == rows.flatMap { $0.dropFirst().map { Float(Double($0) * 0.5) } })
        }
        #expect(bytes.spilledBytes * 3 < floats.spilledBytes, "the compact form is about a quarter of the float32 form")
        #expect(bytes.minFeature == floats.minFeature && bytes.maxLabel == floats.maxLabel && bytes.examples == 5000)

        // Into a SQLite store's content file: the same bound, and the file holds the whole blob.
        let location = HarnessLocation(.sqlite)
        defer { location.destroy() }
        let store = try location.openStore()
        defer { store.close() }
        let direct = DatasetBuilder(encoding: .uint8(scale: 0.5), flushBytes: flush, contentFile: { try store.makeDatasetBlobFile() })
        for start in stride(from: 0, to: rows.count, by: 333) {
            let chunk = rows[start..<min(start + 333, rows.count)].flatMap { $0 }
            try chunk.withUnsafeBytes { try direct.appendByteRows($0, features: d) }
        }
        let file = try #require(try direct.finishFile())
        #expect(direct.peakBuffered <= flush + 4 * (d + 1), "\(direct.peakBuffered) bytes held")
        #expect(file.byteCount == 20 + rows.count * (d + 1))
        var reader = DatasetBlobReader()
        try file.readBack { try reader.consume(Data($0)) }
        #expect(try reader.finish(classes: 256).features.storage == rows.flatMap { $0.dropFirst().map { Float(Double($0) * 0.5) } })
    }

    /// A CSV of whole numbers in 0…255 is stored in the compact form; the first other value (a
    /// fraction, −0, a label over 255) turns the rows so far into float32 rows, also after a spill.
    @Test(arguments: Backend.all)
    func csvOfBytesIsStoredCompactly(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            let c = h.client
            let rows = 3000, d = 50
            var g = Bytes(state: 21)
            let table = (0..<rows).map { _ in (0...d).map { i in i == 0 ? g.byte() % 10 : g.byte() } }
            func csv(_ edit: (inout [[String]]) -> Void) -> Data {
                var cells = table.map { $0.map { String($0) } }
                edit(&cells)
                return Data(("label," + (1...d).map { "f\($0)" }.joined(separator: ",") + "\n" + cells.map { $0.joined(separator: ",") }.joined(separator: "\n")).utf8)
            }
            let cases: [(String, Data, Int, (Int, Int) -> Float?)] = [
                ("bytes", csv { _ in }, 20 + rows * (d + 1), { _, _ in nil }),
                ("a fraction at row 2500", csv { $0[2500][7] = "0.5" }, 12 + rows * 4 * (d + 1), { r, j in r == 2500 && j == 7 ? 0.5 : nil }),
                ("-0 at row 3", csv { $0[3][1] = "-0" }, 12 + rows * 4 * (d + 1), { r, j in r == 3 && j == 1 ? -0.0 : nil }),
                ("256 at the last row", csv { $0[rows - 1][d] = "256" }, 12 + rows * 4 * (d + 1), { r, j in r == rows - 1 && j == d ? 256 : nil }),
            ]
            for (name, body, size, override) in cases {
                let r = checked(try c.request("POST", "/v1/datasets?name=c", body: body, contentType: "text/csv"), "POST", "/v1/datasets")
                #expect(r.status == 201, "\(name): \(r.text)")
                let (ds, got) = try stored(h, r)
                #expect(ds.byteSize == size, "\(name): \(ds.byteSize) bytes")
                var expected: [UInt32] = []
                for (i, row) in table.enumerated() { for j in 1...d { expected.append((override(i, j) ?? Float(row[j])).bitPattern) } }
                let read: [UInt32] = got.features.storage.map(\.bitPattern)
                #expect(read == expected, "\(name)")
                #expect(got.labels == table.map { Int($0[0]) })
            }
            let label300 = checked(try c.request("POST", "/v1/datasets?name=c", body: csv { $0[1][0] = "300" }, contentType: "text/csv"), "POST", "/v1/datasets")
            let (ds300, got300) = try stored(h, label300)
            #expect(ds300.byteSize == 12 + rows * 4 * (d + 1) && got300.labels[1] == 300 && ds300.classes == 301)
        }
        // The conversion across a spill file, at the builder.
        let builder = DatasetBuilder(flushBytes: 4096, compactIntegers: true)
        for i in 0..<2000 { try builder.append(label: i % 7, features: [Float(i % 256), 3, 255, 0], row: i + 1) }
        #expect(builder.encoding == .uint8(scale: 1) && builder.spilledBytes > 0)
        try builder.append(label: 1, features: [0.25, 1, 2, 3], row: 2001)
        #expect(builder.encoding == .float32)
        let read = try builder.withChunks { next in
            var reader = DatasetBlobReader()
            while let chunk = try next() { try reader.consume(chunk) }
            return try reader.finish(classes: 7)
        }
        var expected: [Float] = []
        var labels: [Int] = []
        for i in 0..<2000 { expected += [Float(i % 256), 3, 255, 0]; labels.append(i % 7) }
        expected += [0.25, 1, 2, 3]
        labels.append(1)
        #expect(read.features.storage == expected)
        #expect(read.labels == labels)
    }

    /// Truncated, overlong and corrupt bodies of each format are 4xx and store nothing, also when the
    /// problem comes after the builder spilled to disk, and when the client stops mid-body.
    @Test(arguments: Backend.all)
    func truncatedAndCorruptBodiesStoreNothing(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            let c = h.client
            let d = 784, rows = 8000  // 6.3 MB as uint8: past the builder's 4 MiB buffer
            let u8 = [UInt8]((0..<(rows * (d + 1))).map { UInt8(truncatingIfNeeded: $0 &* 2654435761 >> 7) })
            let whole = npy("|u1", rows: rows, columns: d + 1, u8)
            var csvLines = (0..<6000).map { r in "\(r % 10)," + (0..<200).map { "0.\(($0 * 7 + r) % 1000)" }.joined(separator: ",") }
            csvLines[5500] = "3," + Array(repeating: "0.5", count: 199).joined(separator: ",") + ",0.5x"
            var ndjson = (0..<3000).map { r in "{\"label\":\(r % 10),\"features\":[" + (0..<200).map { "0.\(($0 + r) % 997)" }.joined(separator: ",") + "]}" }
            let cases: [(String, Data, String, Int, String)] = [
                ("npy cut mid-row", whole.prefix(whole.count - 100), "application/x-npy", 422, "truncated"),
                ("npy cut at a row end", whole.prefix(whole.count - (d + 1) * 3), "application/x-npy", 422, "truncated"),
                ("npy with stray bytes", whole + Data([1, 2, 3]), "application/x-npy", 422, "the Content-Length \(whole.count + 3)"),
                ("npy with an extra row", whole + Data(u8.prefix(d + 1)), "application/x-npy", 422, "longer than its shape"),
                ("CSV with a bad number after 5500 rows", Data(csvLines.joined(separator: "\n").utf8), "text/csv", 422, "line 5501, column 201"),
                ("NDJSON cut inside its last line", Data((ndjson.joined(separator: "\n")).utf8.dropLast(7)), "application/x-ndjson", 400, "line 3000"),
            ]
            ndjson[2900] = "{\"label\":1,\"label\":2,\"features\":[0.5]}"
            let more: [(String, Data, String, Int, String)] = [
                ("NDJSON duplicate key after 2900 lines", Data(ndjson.joined(separator: "\n").utf8), "application/x-ndjson", 400, "line 2901"),
            ]
            for (name, body, type, status, mention) in cases + more {
                let r = checked(try c.request("POST", "/v1/datasets?name=bad", body: body, contentType: type), "POST", "/v1/datasets")
                #expect(r.status == status && r.errorMessage.contains(mention), "\(name): \(r.status) \(r.text.prefix(300))")
            }
            // Without a Content-Length (chunked) the rows are read: the truncation and the stray bytes
            // are found at the end, past the builder's buffer (the rows already in the content file).
            let chunkedCases: [(String, Data, String)] = [
                ("chunked npy cut mid-row", whole.prefix(whole.count - 100), "truncated: 7999 of 8000 rows"),
                ("chunked npy with stray bytes", whole + Data([1, 2, 3]), "3 stray bytes"),
                ("chunked npy with an extra row", whole + Data(u8.prefix(d + 1)), "longer than its shape"),
            ]
            for (name, body, mention) in chunkedCases {
                let r = try Self.chunkedUpload(c, key: h.key, body: body)
                #expect(r.status == 422 && r.errorMessage.contains(mention), "\(name): \(r.status) \(r.text.prefix(300))")
            }
            // A Content-Length other than the header's size is refused before any row is read: the
            // server answers with only the head and 64 KiB of rows sent (the rest is never needed).
            let fd0 = try c.connect()
            defer { close(fd0) }
            let dataOffset = whole.count - u8.count
            try c.sendAll(fd0, Array(Self.npyHead(key: h.key, length: "Content-Length: \(whole.count + 785)").utf8) + Array(whole.prefix(dataOffset + 65536)))
            let early = try c.readResponse(fd0, method: "POST")
            #expect(early.status == 422 && early.errorMessage.contains("longer than its shape says") && early.errorMessage.contains("\(whole.count)"),
                    "\(early.status) \(early.text)")
            // The client sends most of the body it announced (past the builder's buffer, so rows are in
            // the content file already), then closes its side.
            let fd = try c.connect()
            defer { close(fd) }
            try c.sendAll(fd, Array(Self.npyHead(key: h.key, length: "Content-Length: \(whole.count)").utf8) + Array(whole.prefix(whole.count * 4 / 5)))
            shutdown(fd, Int32(SHUT_WR))
            let r = try c.readResponse(fd, method: "POST")
            #expect(r.status == 400, "\(r.status) \(r.text)")
            try Self.expectNothingStored(h)
        }
    }

    static func npyHead(key: String, length: String) -> String {
        "POST /v1/datasets?name=cut HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(key)\r\nContent-Type: application/x-npy\r\n\(length)\r\n\r\n"
    }

    /// POSTs `body` as a .npy upload in 1 MiB chunks of `Transfer-Encoding: chunked` (no Content-Length).
    static func chunkedUpload(_ c: TestClient, key: String, query: String = "", body: Data) throws -> TestResponse {
        let fd = try c.connect()
        defer { close(fd) }
        var out = Array(npyHead(key: key, length: "Transfer-Encoding: chunked").replacingOccurrences(of: "?name=cut", with: "?name=chunked\(query)").utf8)
        var offset = body.startIndex
        while offset < body.endIndex {
            let end = min(offset + (1 << 20), body.endIndex)
            out += Array(String(end - offset, radix: 16).utf8) + [13, 10] + Array(body[offset..<end]) + [13, 10]
            offset = end
        }
        out += Array("0\r\n\r\n".utf8)
        try c.sendAll(fd, out)
        return try c.readResponse(fd, method: "POST")
    }

    /// No dataset row, no chunk row, and (SQLite) no content file.
    static func expectNothingStored(_ h: ServiceHarness, _ comment: Comment? = nil) throws {
        #expect(try h.store.datasets(tenantID: try h.tenantID()).items.isEmpty, "a refused upload stores no dataset \(comment?.description ?? "")")
        #expect(try h.store.read { try $0.connection.queryOne("SELECT count(*) AS n FROM dataset_blobs")!.int("n") } == 0)
        let files = try contentFiles(h)
        #expect(files.isEmpty, "content files left: \(files) \(comment?.description ?? "")")
    }

    /// The SQLite store's content files (none for PostgreSQL).
    static func contentFiles(_ h: ServiceHarness) throws -> [String] {
        guard h.location.backend == .sqlite else { return [] }
        return ((try? FileManager.default.contentsOfDirectory(atPath: h.location.sqlitePath + "-blobs")) ?? []).sorted()
    }

    func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }

    /// A large upload (past the builder's 4 MiB buffer) is stored bit-exactly by the direct path: on
    /// SQLite its rows go straight to one content file (no chunk rows), whose bytes are the blob and
    /// whose SHA-256 is the dataset's checksum; deleting the dataset removes the file. PostgreSQL keeps
    /// chunk rows. A CSV that turns from compact to float32 rows after the buffer leaves one file.
    @Test(arguments: Backend.all)
    func largeUploadsGoStraightToTheStore(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            let c = h.client
            let rows = 9000, d = 784  // 7.1 MB
            var g = Bytes(state: 44)
            var u8 = [UInt8]()
            u8.reserveCapacity(rows * (d + 1))
            for _ in 0..<rows {
                u8.append(g.byte() % 10)
                for _ in 0..<d { u8.append(g.byte() % 3 == 0 ? g.byte() : 7) }
            }
            let body = npy("|u1", rows: rows, columns: d + 1, u8)
            let blob = Array("PFCDATA3".utf8) + le(UInt32(d)) + le((1.0 / 255).bitPattern) + u8
            var ids: [String] = []
            for (name, send) in [("Content-Length", { try c.request("POST", "/v1/datasets?name=big&scale=1/255", body: body, contentType: "application/x-npy") }),
                                 ("chunked", { try Self.chunkedUpload(c, key: h.key, query: "&scale=1/255", body: body) })] {
                let r = try send()
                #expect(r.status == 201, "\(name): \(r.text)")
                let (ds, got) = try stored(h, r)
                ids.append(ds.id)
                #expect(ds.byteSize == blob.count && ds.checksum == SHA256Hex.digest(Data(blob)), "\(name)")
                #expect(ds.minFeature == 0 && ds.classes == 10 && ds.examples == rows)
                #expect(got.labels == (0..<rows).map { Int(u8[$0 * (d + 1)]) }, "\(name)")
                var expected = [UInt32]()
                expected.reserveCapacity(rows * d)
                for r in 0..<rows { for j in 1...d { expected.append(Float(Double(u8[r * (d + 1) + j]) / 255).bitPattern) } }
                #expect(got.features.storage.map(\.bitPattern) == expected, "\(name): features differ")
                let chunkRows = try h.store.read { try $0.connection.queryOne("SELECT count(*) AS n FROM dataset_blobs WHERE dataset_id = \(ds.id)")!.int("n") }
                if backend == .sqlite {
                    let file = try h.store.read { try $0.connection.queryOne("SELECT blob_file FROM datasets WHERE id = \(ds.id)")!.optionalString("blob_file") }
                    #expect(chunkRows == 0 && file != nil, "\(name): \(chunkRows) chunk rows, file \(file ?? "none")")
                    let onDisk = try Data(contentsOf: URL(fileURLWithPath: h.location.sqlitePath + "-blobs/" + (file ?? "")))
                    #expect(onDisk == Data(blob), "\(name): the content file is the blob")
                } else {
                    #expect(chunkRows == (blob.count + datasetChunkSize - 1) / datasetChunkSize)
                }
            }
            #expect(try Self.contentFiles(h).count == (backend == .sqlite ? 2 : 0))

            // A CSV of bytes whose last row has a fraction: the compact rows in the first content file
            // become float32 rows in a second one; only that one is kept.
            let csvRows = 12000, cd = 100  // compact 1.2 MB, float32 4.8 MB: past the buffer
            let table = (0..<csvRows).map { r in (0...cd).map { i in i == 0 ? UInt8(r % 10) : g.byte() } }
            var lines = table.map { $0.map { String($0) }.joined(separator: ",") }
            lines[csvRows - 1] += ".5"
            let csv = checked(try c.request("POST", "/v1/datasets?name=csv", body: Data(lines.joined(separator: "\n").utf8), contentType: "text/csv"), "POST", "/v1/datasets")
            #expect(csv.status == 201, "\(csv.text)")
            let (csvSet, csvGot) = try stored(h, csv)
            #expect(csvSet.byteSize == 12 + csvRows * 4 * (cd + 1))
            var expected = table.flatMap { $0.dropFirst().map { Float($0) } }
            expected[expected.count - 1] += 0.5
            #expect(csvGot.features.storage == expected && csvGot.labels == table.map { Int($0[0]) })
            #expect(try Self.contentFiles(h).count == (backend == .sqlite ? 3 : 0))

            // Deleting a dataset removes its file once the delete committed.
            for id in ids + [csvSet.id] {
                #expect(try c.request("DELETE", "/v1/datasets/\(id)").status == 204)
            }
            try Self.expectNothingStored(h)
        }
    }

    /// Crash safety of the content files: a file no committed row names is never read and is removed
    /// (a rolled-back transaction unlinks its file; at start, `migrate()` sweeps files left by a
    /// process that died mid-upload, but not the file of an upload still being written, nor a stored one).
    @Test func contentFilesOfUncommittedUploadsAreRemoved() throws {
        let location = HarnessLocation(.sqlite)
        defer { location.destroy() }
        let store = try location.openStore() as! SQLiteStore
        defer { store.close() }
        let tenant = Tenant(name: "t")
        try store.insert(tenant)
        let directory = location.sqlitePath + "-blobs"
        func files() -> [String] { ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted() }
        let blob = Data(Array("PFCDATA3".utf8) + le(UInt32(2)) + le((1.0).bitPattern) + [1, 2, 3, 0, 4, 5])

        // A transaction that fails after attaching the file: rolled back, the file goes with it.
        do {
            let file = try #require(try store.makeDatasetBlobFile())
            try blob.withUnsafeBytes { try file.write($0) }
            try file.finish()
            let ds = Dataset(tenantID: tenant.id, name: "x", examples: 2, features: 2, classes: 2)
            struct Refused: Error {}
            #expect(throws: Refused.self) {
                try store.transaction { s in
                    try s.insert(ds)
                    _ = try s.attachDatasetBlob(datasetID: ds.id, tenantID: tenant.id, file: file)
                    throw Refused()
                }
            }
            #expect(files() == [file.name], "still held by its upload")
        }
        let left = try store.datasets(tenantID: tenant.id).items
        #expect(files().isEmpty && left.isEmpty)

        // A stored dataset, an upload in progress, and two files of uploads that died with their process.
        let ds = Dataset(tenantID: tenant.id, name: "kept", examples: 2, features: 2, classes: 2)
        let storedName: String = try {
            let stored = try #require(try store.makeDatasetBlobFile())
            try blob.withUnsafeBytes { try stored.write($0) }
            try stored.finish()
            try store.transaction { s in
                try s.insert(ds)
                _ = try s.attachDatasetBlob(datasetID: ds.id, tenantID: tenant.id, file: stored)
            }
            return stored.name
        }()  // released: only its row keeps it now
        let writing = try #require(try store.makeDatasetBlobFile())
        try blob.prefix(5).withUnsafeBytes { try writing.write($0) }
        for orphan in ["dead-1.pfcdata", "dead-2.pfcdata"] {
            #expect(FileManager.default.createFile(atPath: directory + "/" + orphan, contents: blob))
        }
        #expect(files().count == 4)
        let removed = try store.sweepDatasetBlobFiles()
        #expect(removed == ["dead-1.pfcdata", "dead-2.pfcdata"])
        #expect(Set(files()) == [storedName, writing.name])
        // A restart (migrate) sweeps too, and the stored dataset still reads.
        #expect(FileManager.default.createFile(atPath: directory + "/dead-3.pfcdata", contents: blob))
        try store.migrate()
        #expect(Set(files()) == [storedName, writing.name])
        let read = try DatasetBlobReader.load(from: store, dataset: ds, tenantID: tenant.id, classes: 2, limits: ServiceLimits())
        #expect(read.labels == [1, 0] && read.features.storage == [2, 3, 4, 5])
        #expect(try store.dataset(id: ds.id, tenantID: tenant.id).checksum == SHA256Hex.digest(blob))
    }

    /// Two processes on one SQLite file: a sweep that started before another process's upload
    /// committed must not remove that upload's file once its lock is released. Each file is checked in
    /// a read of its own, after its lock; one snapshot taken at the sweep's start did not see the row.
    /// A file unlinked under its creator before it locked it is never used.
    @Test func aSweepKeepsAnUploadCommittedWhileItRuns() throws {
        let location = HarnessLocation(.sqlite)
        defer { location.destroy() }
        let a = try location.openStore() as! SQLiteStore
        defer { a.close() }
        let b = try location.openStore() as! SQLiteStore  // the other process's store
        defer { b.close() }
        let tenant = Tenant(name: "t")
        try a.insert(tenant)
        let directory = location.sqlitePath + "-blobs"
        let blob = Data(Array("PFCDATA3".utf8) + le(UInt32(2)) + le((1.0).bitPattern) + [1, 2, 3, 0, 4, 5])
        var upload: DatasetBlobFile? = try #require(try a.makeDatasetBlobFile())
        let name = upload!.name
        try blob.withUnsafeBytes { try upload!.write($0) }
        try upload!.finish()
        let orphan = "--dead.pfcdata"  // sorts first: checked before the upload's file
        #expect(FileManager.default.createFile(atPath: directory + "/" + orphan, contents: blob))
        let ds = Dataset(tenantID: tenant.id, name: "late", examples: 2, features: 2, classes: 2)
        var checked: [String] = []
        let removed = try b.sweepDatasetBlobFiles(afterEachCheck: { checkedName in
            checked.append(checkedName)
            guard checkedName == orphan, let file = upload else { return }
            // While the sweep runs: the upload commits its row, then releases its file's lock.
            try a.transaction { s in
                try s.insert(ds)
                _ = try s.attachDatasetBlob(datasetID: ds.id, tenantID: tenant.id, file: file)
            }
            upload = nil
        })
        #expect(checked == [orphan, name])
        #expect(removed == [orphan])
        #expect(FileManager.default.fileExists(atPath: directory + "/" + name))
        let read = try DatasetBlobReader.load(from: b, dataset: ds, tenantID: tenant.id, classes: 2, limits: ServiceLimits())
        #expect(read.labels == [1, 0] && read.features.storage == [2, 3, 4, 5])

        // What a creator checks after locking: the name still names its file.
        let path = directory + "/probe"
        let fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0o600)
        #expect(fd >= 0)
        defer { close(fd) }
        #expect(DatasetBlobFile.isLinked(fd, at: path))
        unlink(path)
        #expect(!DatasetBlobFile.isLinked(fd, at: path))
        #expect(FileManager.default.createFile(atPath: path, contents: Data([1])))  // another file under the name
        #expect(!DatasetBlobFile.isLinked(fd, at: path))
        unlink(path)
    }

    /// A content file of several direct-I/O blocks, written in odd pieces and read back part-way (which
    /// drains the direct appender and goes on through the page cache), holds exactly the bytes given,
    /// and its checksum is theirs.
    @Test func contentFilesKeepEveryByteAcrossDirectBlocks() throws {
        let location = HarnessLocation(.sqlite)
        defer { location.destroy() }
        let store = try location.openStore() as! SQLiteStore
        defer { store.close() }
        var source = Bytes(state: 7)
        let block = DirectAppender.blockBytes
        let bytes = (0..<(2 * block + 12_345)).map { _ in source.byte() }
        let more = (0..<(block + 777)).map { _ in source.byte() }
        let file = try #require(try store.makeDatasetBlobFile())
        var offset = 0, piece = 1
        while offset < bytes.count {  // pieces of 1, 1000, 999_001, ... bytes: some cross block borders
            let n = min(bytes.count - offset, piece)
            try bytes[offset..<(offset + n)].withUnsafeBytes { try file.write($0) }
            offset += n
            piece = piece * 1000 % 1_999_993 + 1
        }
        #expect(try file.readChunk(offset: block - 10, maxCount: 20) == Data(bytes[(block - 10)..<(block + 10)]))
        try more.withUnsafeBytes { try file.write($0) }
        let summary = try file.finish()
        let all = bytes + more
        #expect(summary.byteCount == all.count && file.byteCount == all.count)
        #expect(summary.sha256 == SHA256Hex.digest(Data(all)))
        let onDisk = try #require(FileManager.default.contents(atPath: location.sqlitePath + "-blobs/" + file.name))
        #expect(onDisk == Data(all))
    }

    /// Tricky decimals: the CSV fast path gives `strtof`'s Float for every one of them.
    @Test func csvNumbersEqualStrtof() throws {
        var texts = ["0", "-0", "+0", "1", "255", "0.5", "-0.5", "+0.5", ".5", "5.", "0.1", "0.2", "0.3", "1e10", "1e-10", "-1E+10",
                     "16777215", "16777216", "16777217", "1677721.5", "0.0000001", "1e-7", "3.4028235e38", "1.17549435e-38", "1e-45",
                     "123456789", "0.123456789", "9.999999e9", "1.0000001", "0.00390625", "0.0039215686", "0.003921568627450980",
                     "7e-10", "7e-11", "1e11", "00000000000001", "0.000000000000000000000000001", "2.5e+003", "  0.25", "0.75  ",
                     "1e000", "1e0001", "4.2e1", "-9.87654e-3", "8388609", "8388607.5", "0.6931472", "2.7182817", "1.5e-5"]
        var g = Bytes(state: 77)
        for _ in 0..<3000 {
            let digits = String(g.next() % (g.next() % 4 == 0 ? 1_000_000_000 : 10_000_000))
            let point = Int(g.next() % UInt64(digits.count + 1))
            var t = String(digits.prefix(point)) + "." + String(digits.dropFirst(point))
            if g.next() % 3 == 0 { t += "e" + (g.next() % 2 == 0 ? "-" : "") + String(g.next() % 14) }
            if g.next() % 3 == 0 { t = "-" + t }
            texts.append(t)
        }
        let csv = texts.map { "1,\($0)" }.joined(separator: "\n")
        let data = try CSVDatasetReader.parse(Data(csv.utf8), source: "t")
        for (i, t) in texts.enumerated() {
            let reference = strtof(t.trimmingCharacters(in: .whitespaces), nil)
            #expect(data.features.storage[i].bitPattern == reference.bitPattern, "\(t): \(data.features.storage[i]) vs strtof \(reference)")
        }
        // The fast path took most of them (else this test would not test it).
        let fast = texts.filter { t in t.utf8.withContiguousStorageIfAvailable { CSVRowParser.fastField($0.baseAddress!, from: 0, count: $0.count) != nil } ?? false }
        #expect(fast.count > texts.count / 3, "\(fast.count) of \(texts.count) on the fast path")
    }

    /// The NDJSON fast path reads a line exactly as the strict decoder does, and leaves every line it
    /// does not fully understand to the decoder.
    @Test func ndjsonFastPathMatchesTheDecoder() throws {
        var g = Bytes(state: 3)
        var lines = ["{\"label\":3,\"features\":[0,1,0.5,-0.25,1e-3,2.5E+2,-0,0.1]}",
                     " { \"features\" : [ 0.3 , 7 ] , \"label\" : 0 } ",
                     "{\"label\":999999999,\"features\":[12345678901234, 0.000001, 1e22, 1e-22, 3.4e20]}"]
        for _ in 0..<500 {
            let values = (0..<5).map { _ -> String in
                let places = Int(g.next() % 9)
                let text = String(format: "%.\(places)f", Double(g.next() % 10_000_000) / pow(10, Double(places)))
                return g.next() % 2 == 0 ? text : "-\(text)e-\(g.next() % 9)"
            }
            lines.append("{\"label\":\(g.next() % 10),\"features\":[\(values.joined(separator: ","))]}")
        }
        var values = [Float]()
        for line in lines {
            let decoded = try JSONCoding.decode(NDJSONExample.self, from: Data(line.utf8))
            let label = Array(line.utf8).withUnsafeBufferPointer { NDJSONFastLine.parse($0, into: &values) }
            #expect(label != nil, "\(line) left the fast path")
            #expect(decoded.label == .one(Double(label ?? -1)), "\(line)")
            #expect(values.map(\.bitPattern) == decoded.features.map { Float($0).bitPattern }, "\(line)")
        }
        // Lines the fast path must hand to the decoder (which refuses or reads them its own way).
        let others = ["{\"label\":1,\"label\":2,\"features\":[1]}", "{\"label\":01,\"features\":[1]}", "{\"label\":1,\"features\":[01]}",
                      "{\"label\":1,\"features\":[+1]}", "{\"label\":1,\"features\":[.5]}", "{\"label\":1,\"features\":[1.]}",
                      "{\"label\":1.0,\"features\":[1]}", "{\"label\":1,\"features\":[[1,2]]}", "{\"label\":[1,null],\"features\":[1]}",
                      "{\"label\":1,\"features\":[]}", "{\"label\":1,\"features\":[1],\"x\":2}", "{\"lab\\u0065l\":1,\"features\":[1]}",
                      "{\"label\":1,\"features\":[1e39]}", "{\"label\":1,\"features\":[NaN]}", "{\"label\":1,\"features\":[1,]}",
                      "{\"label\":1,\"features\":[1]}x", "{\"label\":1,\"features\":[1]", "{\"label\":-1,\"features\":[1]}",
                      "{\"label\":1,\"features\":[0.12345678901234567890]}", "{\"features\":[1]}", "[1]"]
        for line in others {
            #expect(Array(line.utf8).withUnsafeBufferPointer { NDJSONFastLine.parse($0, into: &values) } == nil, "\(line) took the fast path")
        }
    }
}
