import Foundation
import Testing
import TestSupport
@testable import PFC
@testable import Service
@testable import Storage

/// `.npy` dataset uploads: the same dataset as CSV for every accepted dtype, and clear 4xx errors
/// (nothing stored) for every malformed file, over real sockets on both stores.
@Suite(.serialized) struct NpyUploadTests {
    /// A `.npy` file (version 1.0) of `rows` × `columns` elements given as little-endian bytes.
    static func npy(descr: String, shape: String, data: [UInt8], fortran: Bool = false, version: UInt8 = 1) -> Data {
        var header = "{'descr': '\(descr)', 'fortran_order': \(fortran ? "True" : "False"), 'shape': \(shape), }"
        let prefix = version == 1 ? 10 : 12
        while (prefix + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        var out: [UInt8] = [0x93] + Array("NUMPY".utf8) + [version, 0]
        let n = header.utf8.count
        out += version == 1 ? [UInt8(n & 0xFF), UInt8(n >> 8)] : [UInt8(n & 0xFF), UInt8((n >> 8) & 0xFF), 0, 0]
        return Data(out + Array(header.utf8) + data)
    }

    static func bytes<T>(_ values: [T]) -> [UInt8] { values.withUnsafeBytes { Array($0) } }

    func stored(_ h: ServiceHarness, _ r: TestResponse) throws -> LabeledDataset {
        let tenant = try h.tenantID()
        let ds = try h.store.dataset(id: r.object["id"] as! String, tenantID: tenant)
        return try DatasetBlobReader.load(from: h.store, dataset: ds, tenantID: tenant, classes: 1, limits: ServiceLimits())
    }

    @Test(arguments: Backend.all)
    func npyUploadsMatchCSV(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            let c = h.client
            // Three rows: label, then four pixels.
            let pixels: [[UInt8]] = [[3, 0, 255, 17, 128], [0, 1, 2, 3, 4], [9, 200, 100, 50, 25]]
            let csv = pixels.map { row in "\(row[0])," + row.dropFirst().map { "\(Float(Double($0) * (1.0 / 255)))" }.joined(separator: ",") }
                .joined(separator: "\n")
            let fromCSV = checked(try c.request("POST", "/v1/datasets?name=c", body: Data(csv.utf8), contentType: "text/csv"), "POST", "/v1/datasets")
            #expect(fromCSV.status == 201, "\(fromCSV.text)")
            let reference = try stored(h, fromCSV)

            let u8 = Self.npy(descr: "|u1", shape: "(3, 5)", data: pixels.flatMap { $0 })
            let f32 = Self.npy(descr: "<f4", shape: "(3, 5)", data: Self.bytes(pixels.flatMap { row in [Float(row[0])] + row.dropFirst().map { Float(Double($0) * (1.0 / 255)) } }))
            let f64 = Self.npy(descr: "<f8", shape: "(3, 5)", data: Self.bytes(pixels.flatMap { $0.map(Double.init) }), version: 2)
            for (name, body, query) in [("u8", u8, "&scale=1/255"), ("f32", f32, ""), ("f64", f64, "&scale=0.00392156862745098")] {
                let r = checked(try c.request("POST", "/v1/datasets?name=\(name)\(query)&image_shape=2,2", body: body, contentType: "application/x-npy"),
                                "POST", "/v1/datasets")
                #expect(r.status == 201, "\(name): \(r.text)")
                #expect(r.object["examples"] as? Int == 3 && r.object["features"] as? Int == 4 && r.object["classes"] as? Int == 10)
                let got = try stored(h, r)
                #expect(got.labels == reference.labels)
                #expect(zip(got.features.storage, reference.features.storage).allSatisfy { abs($0 - $1) <= 1e-6 }, "\(name): \(got.features.storage)")
            }
            // Chunked delivery: a body cut into small pieces reads the same (the server streams it).
            var big = [UInt8]()
            for i in 0..<2000 {
                big.append(UInt8(i % 10))
                for j in 0..<31 { big.append(UInt8((j * 7 + i) % 256)) }
            }
            let r = checked(try c.request("POST", "/v1/datasets?name=big&scale=1/255", body: Self.npy(descr: "|u1", shape: "(2000, 32)", data: big),
                                          contentType: "application/x-npy"), "POST", "/v1/datasets")
            #expect(r.status == 201 && r.object["examples"] as? Int == 2000, "\(r.text)")
            let got = try stored(h, r)
            #expect(got.features.storage[31 * 1999 + 30] == Float(Double(big[32 * 1999 + 31]) * (1.0 / 255)))
        }
    }

    @Test(arguments: Backend.all)
    func malformedNpyIsRefusedAndNothingIsStored(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            let c = h.client
            let ok = Array(repeating: UInt8(1), count: 10)
            let cases: [(String, Data, String, Int, String)] = [
                ("not npy", Data("label,a\n1,2\n".utf8), "", 422, "not a .npy file"),
                ("fortran", Self.npy(descr: "|u1", shape: "(2, 5)", data: ok, fortran: true), "", 422, "Fortran"),
                ("3-D", Self.npy(descr: "|u1", shape: "(2, 5, 1)", data: ok), "", 422, "2-D"),
                ("1 column", Self.npy(descr: "|u1", shape: "(10, 1)", data: ok), "", 422, "2-D"),
                ("big-endian", Self.npy(descr: ">f4", shape: "(1, 2)", data: [0, 0, 0, 0, 0, 0, 0, 0]), "", 422, "big-endian"),
                ("int64", Self.npy(descr: "<i8", shape: "(1, 2)", data: Array(repeating: 0, count: 16)), "", 422, "uint8, float32 or float64"),
                ("truncated", Self.npy(descr: "|u1", shape: "(3, 5)", data: ok), "", 422, "truncated"),
                ("too long", Self.npy(descr: "|u1", shape: "(1, 5)", data: ok), "", 422, "longer than its shape"),
                ("label", Self.npy(descr: "<f4", shape: "(1, 2)", data: Self.bytes([Float(1.5), 0])), "", 422, "label"),
                ("NaN", Self.npy(descr: "<f4", shape: "(1, 2)", data: Self.bytes([Float(1), .nan])), "", 422, "finite"),
                ("scale", Self.npy(descr: "|u1", shape: "(2, 5)", data: ok), "&scale=0/0", 400, "scale"),
                ("negative scale", Self.npy(descr: "|u1", shape: "(2, 5)", data: ok), "&scale=-1", 400, "scale"),
                ("huge shape", Self.npy(descr: "<f8", shape: "(9223372036854775807, 2)", data: []), "", 413, "upload limit"),
                ("header only", Data(Self.npy(descr: "|u1", shape: "(2, 5)", data: []).prefix(20)), "", 422, "header"),
            ]
            for (name, body, query, status, mention) in cases {
                let r = checked(try c.request("POST", "/v1/datasets?name=bad\(query)", body: body, contentType: "application/x-npy"), "POST", "/v1/datasets")
                #expect(r.status == status && r.errorMessage.contains(mention), "\(name): \(r.status) \(r.text)")
            }
            #expect(try h.store.datasets(tenantID: try h.tenantID()).items.isEmpty, "a refused upload stores nothing")
        }
    }
}
