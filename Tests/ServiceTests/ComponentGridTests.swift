import Foundation
import Testing
import TestSupport
@testable import Service

/// `GET /v1/models/{id}/components.png` (the dashboard's parts grid) and the dashboard's static files
/// under `/ui/`, over real sockets on both stores.
@Suite(.serialized) struct ComponentGridTests {
    /// A decoded 8-bit grayscale PNG of the kind PNGEncoder writes (stored deflate blocks only).
    struct Gray: Equatable {
        let width: Int, height: Int
        let pixels: [UInt8]
        func pixel(_ x: Int, _ y: Int) -> UInt8 { pixels[y * width + x] }
    }

    static func be32(_ b: [UInt8], _ at: Int) -> Int { Int(b[at]) << 24 | Int(b[at + 1]) << 16 | Int(b[at + 2]) << 8 | Int(b[at + 3]) }

    /// Reads IHDR for the size and inflates the IDAT stream's stored blocks; nil for anything else.
    static func decode(_ png: [UInt8]) -> Gray? {
        guard png.count > 33, Array(png.prefix(8)) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] else { return nil }
        var at = 8, width = 0, height = 0, idat = [UInt8]()
        while at + 8 <= png.count {
            let n = be32(png, at), type = String(decoding: png[(at + 4)..<(at + 8)], as: UTF8.self)
            guard at + 12 + n <= png.count else { return nil }
            let data = Array(png[(at + 8)..<(at + 8 + n)])
            if type == "IHDR" {
                width = be32(data, 0); height = be32(data, 4)
                guard data[8] == 8, data[9] == 0 else { return nil }
            } else if type == "IDAT" { idat += data }
            at += 12 + n
        }
        var raw = [UInt8](), p = 2 // skip the zlib header
        while p + 5 <= idat.count {
            let last = idat[p] & 1, len = Int(idat[p + 1]) | Int(idat[p + 2]) << 8
            guard idat[p] >> 1 == 0, p + 5 + len <= idat.count else { return nil }
            raw += idat[(p + 5)..<(p + 5 + len)]
            p += 5 + len
            if last == 1 { break }
        }
        guard width > 0, height > 0, raw.count == height * (width + 1) else { return nil }
        var pixels = [UInt8]()
        for y in 0..<height {
            guard raw[y * (width + 1)] == 0 else { return nil }
            pixels += raw[(y * (width + 1) + 1)..<((y + 1) * (width + 1))]
        }
        return Gray(width: width, height: height, pixels: pixels)
    }

    /// An image-shaped digits dataset (8×8) and a PFC model with K = 16 trained on it; also a dataset without a shape.
    static func trained(_ h: ServiceHarness, imageShape: Bool = true, kind: String = "pfc") throws -> String {
        let (rows, labels) = try RegistryTests.digits(limit: 200)
        var ds: [String: Any] = ["name": "grid", "features": rows, "labels": labels]
        if imageShape { ds["image_shape"] = [8, 8] }
        let d = checked(try h.client.json("POST", "/v1/datasets", ds), "POST", "/v1/datasets")
        #expect(d.status == 201, "\(d.text)")
        var spec: [String: Any] = ["name": "grid", "kind": kind, "input_dim": 64, "output_dim": 10]
        if kind == "mlp" { spec["hidden"] = 16 } else { spec["basis"] = 16; spec["iterations"] = 10 }
        let m = checked(try h.client.json("POST", "/v1/models", spec), "POST", "/v1/models")
        let id = try #require(m.object["id"] as? String, "\(m.text)")
        let job = try h.client.json("POST", "/v1/models/\(id)/train", ["dataset_id": d.object["id"] as! String, "epochs": 1,
                                                                     "learning_rate": 0.003, "validation_fraction": 0])
        let done = try h.waitForJob(try #require(job.object["id"] as? String, "\(job.text)"))
        #expect(done["state"] as? String == "succeeded", "\(done)")
        return id
    }

    static func grid(_ h: ServiceHarness, _ id: String, _ query: String) throws -> (TestResponse, Gray?) {
        let r = checked(try h.client.request("GET", "/v1/models/\(id)/components.png\(query)"), "GET", "/v1/models/\(id)/components.png")
        return (r, r.status == 200 ? decode(Array(r.body)) : nil)
    }

    @Test(arguments: Backend.all)
    func gridHasOneTilePerColumnInTheDocumentedLayout(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            let id = try Self.trained(h)
            // Default: all 16 columns, ceil(√16) = 4 per row, 8×8 tiles with 1-pixel gaps: 4·9 − 1 = 35 square.
            let (all, g) = try Self.grid(h, id, "")
            #expect(all.status == 200 && all.header("Content-Type") == "image/png", "\(all.text)")
            #expect(g?.width == 35 && g?.height == 35, "\(String(describing: g?.width))×\(String(describing: g?.height))")
            #expect(all.header("X-Grid-Columns") == "0-15" && all.header("X-Grid-Per-Row") == "4" && all.header("X-Model-Version") == "1")
            // Columns 3–9 (7 tiles), 3 per row, magnified 2×: tiles of 16 px, 3 across and 3 down: 3·17 − 1 = 50.
            let (part, p) = try Self.grid(h, id, "?block=0&columns=3-9&per_row=3&scale=2")
            #expect(part.status == 200, "\(part.text)")
            #expect(p?.width == 50 && p?.height == 50)
            // One column; per_row larger than the count draws one row.
            let (one, o) = try Self.grid(h, id, "?columns=7&per_row=10")
            #expect(one.status == 200 && o?.width == 8 && o?.height == 8)

            // Every tile is exactly the single-column PNG of that basis vector (same scaling), gaps are black.
            let gg = try #require(g)
            for k in 0..<16 {
                let single = try #require(Self.decode(Array(try h.client.request("GET", "/v1/models/\(id)/components/0/\(k).png").body)))
                let ox = (k % 4) * 9, oy = (k / 4) * 9
                var tile = [UInt8]()
                for y in 0..<8 { for x in 0..<8 { tile.append(gg.pixel(ox + x, oy + y)) } }
                #expect(tile == single.pixels, "tile \(k)")
            }
            #expect((0..<35).allSatisfy { gg.pixel(8, $0) == 0 && gg.pixel($0, 17) == 0 }, "1-pixel black gaps")
            // Magnified tiles repeat each pixel scale × scale times: tile 0 of the 2× grid is column 3.
            let pp = try #require(p)
            let col3 = try #require(Self.decode(Array(try h.client.request("GET", "/v1/models/\(id)/components/0/3.png").body)))
            #expect((0..<16).allSatisfy { y in (0..<16).allSatisfy { x in pp.pixel(x, y) == col3.pixel(x / 2, y / 2) } })
            // The tile at row 2, column 0 of the 3-per-row grid is column 3 + 6 = 9.
            let col9 = try #require(Self.decode(Array(try h.client.request("GET", "/v1/models/\(id)/components/0/9.png").body)))
            #expect((0..<16).allSatisfy { y in (0..<16).allSatisfy { x in pp.pixel(x, 34 + y) == col9.pixel(x / 2, y / 2) } })
            // A version can be asked for: version 0 is the random initialization (no training data, so no image
            // shape recorded: 422 unless `shape` is given), with other pixels.
            let (noShape, _) = try Self.grid(h, id, "?version=0")
            #expect(noShape.status == 422 && noShape.text.contains("shape"), "\(noShape.text)")
            let (v0, z) = try Self.grid(h, id, "?version=0&shape=8,8")
            #expect(v0.status == 200 && v0.header("X-Model-Version") == "0" && z?.width == 35 && z != g, "\(v0.text)")
        }
    }

    @Test(arguments: Backend.all)
    func badRangesBlocksAndModelsAre4xxJSON(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            let id = try Self.trained(h)
            let cases: [(String, Int)] = [
                ("?columns=5-3", 400), ("?columns=abc", 400), ("?columns=-1", 400), ("?columns=1-2-3", 400), ("?columns=%2B5", 400), ("?columns=0x1", 400), ("?columns=", 400),
                ("?columns=99999999999999999999", 400), ("?columns=0-16", 422), ("?columns=16", 422),
                ("?block=1", 422), ("?block=x", 422), ("?scale=0", 400), ("?scale=9", 400), ("?per_row=0", 400), ("?per_row=501", 400),
                ("?version=7", 404), ("?version=-1", 400), ("?shape=4,4", 422), ("?shape=8,8&scale=9", 400),
            ]
            for (query, status) in cases {
                let (r, _) = try Self.grid(h, id, query)
                #expect(r.status == status, "\(query) → \(r.status) \(r.text)")
                #expect(r.header("Content-Type")?.hasPrefix("application/json") == true && (r.object["error"] as? [String: Any])?["message"] is String,
                        "\(query): \(r.text)")
            }
            // At scale 8 a tile is 64 px, the largest allowed.
            #expect(try Self.grid(h, id, "?columns=0-1&scale=8").1?.width == 2 * 65 - 1)
            // Unknown model, another tenant's model, no key.
            #expect(try Self.grid(h, "no-such-model", "").0.status == 404)
            let other = try h.otherTenantClient()
            let foreign = try other.request("GET", "/v1/models/\(id)/components.png")
            #expect(foreign.status == 404, "another tenant's model: \(foreign.status)")
            #expect(try h.client.request("GET", "/v1/models/\(id)/components.png", auth: false).status == 401)
        }
    }

    @Test(arguments: Backend.all)
    func nonImageAndNonPFCModelsAre422(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            // Trained on data without an image shape: 422 saying to pass ?shape, which then works.
            let plain = try Self.trained(h, imageShape: false)
            let (r, _) = try Self.grid(h, plain, "")
            #expect(r.status == 422 && r.text.contains("shape"), "\(r.text)")
            let (withShape, g) = try Self.grid(h, plain, "?shape=8,8&columns=0-3")
            #expect(withShape.status == 200 && g?.width == 17 && g?.height == 17)
            // An MLP has no basis vectors.
            let mlp = try Self.trained(h, kind: "mlp")
            let (m, _) = try Self.grid(h, mlp, "")
            #expect(m.status == 422 && m.text.contains("no PFC blocks"), "\(m.text)")
        }
    }

    @Test func dashboardFilesAreServedWithoutAKeyUnderAStrictCSP() throws {
        try ServiceHarness.with(.sqlite) { h in
            let c = h.client
            let index = try c.request("GET", "/ui/", auth: false)
            #expect(index.status == 200 && index.header("Content-Type") == "text/html; charset=utf-8")
            #expect(index.text.contains("<script type=\"module\" src=\"/ui/app.js\"></script>"))
            let csp = try #require(index.header("Content-Security-Policy"))
            #expect(csp.contains("default-src 'none'") && csp.contains("script-src 'self'") && csp.contains("connect-src 'self'")
                    && !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval") && csp.contains("frame-ancestors 'none'"))
            #expect(index.header("X-Content-Type-Options") == "nosniff")
            // No inline script or style in the page: every <script> has a src, no style attributes or elements.
            #expect(!index.text.contains("<script>") && !index.text.contains("style=") && !index.text.contains("<style"))
            let types = ["app.js": "text/javascript; charset=utf-8", "api.js": "text/javascript; charset=utf-8", "charts.js": "text/javascript; charset=utf-8",
                         "app.css": "text/css; charset=utf-8", "favicon.svg": "image/svg+xml", "index.html": "text/html; charset=utf-8"]
            for (file, type) in types {
                let r = try c.request("GET", "/ui/\(file)", auth: false)
                #expect(r.status == 200 && r.header("Content-Type") == type && r.header("Content-Security-Policy") == csp, "\(file)")
                #expect(r.header("X-Content-Type-Options") == "nosniff" && r.body.count > 100, "\(file)")
                // The files never name another origin (no CDN): the only URL scheme is the SVG namespace.
                let text = r.text.replacingOccurrences(of: "http://www.w3.org/2000/svg", with: "")
                #expect(!text.contains("http://") && !text.contains("https://") && !text.contains("//cdn"), "\(file) names another origin")
                // Revalidation: the ETag answers 304 with no body.
                let etag = try #require(r.header("ETag"))
                let again = try c.request("GET", "/ui/\(file)", headers: [("If-None-Match", etag)], auth: false)
                #expect(again.status == 304 && again.body.isEmpty && again.header("Content-Security-Policy") == csp, "\(file)")
            }
            // The API key never travels in a URL: the pages send it as a header only.
            let api = try c.request("GET", "/ui/api.js", auth: false).text
            #expect(api.contains("Authorization: \"Bearer \" + getKey()") && !api.contains("?key=") && !api.contains("api_key="))
            #expect(!api.contains("new EventSource"), "EventSource cannot send the key; events are read with fetch")
            // /ui is the same page; unknown files are 404 JSON under the same policy; HEAD works.
            let bare = try c.request("GET", "/ui", auth: false)
            #expect(bare.status == 200 && bare.body == index.body && bare.header("Content-Security-Policy") == csp)
            // A traversal or a NUL never reaches a file: refused (the HTTP layer answers 400 for some).
            for path in ["/ui/..%2Fopenapi.yaml", "/ui/%00"] {
                let r = try c.request("GET", path, auth: false)
                #expect(r.status == 400 || r.status == 404, "\(path) → \(r.status)")
            }
            for path in ["/ui/nope.js", "/ui/app.js.map", "/ui/index.html.bak"] {
                let missing = try c.request("GET", path, auth: false)
                #expect(missing.status == 404 && missing.header("Content-Security-Policy") == csp, "\(path) → \(missing.status)")
                #expect((missing.object["error"] as? [String: Any])?["code"] as? String == "not_found", "\(path)")
            }
            let head = try c.request("HEAD", "/ui/app.js", auth: false)
            #expect(head.status == 200 && head.body.isEmpty)
            #expect(try c.request("POST", "/ui/app.js", body: Data("x".utf8), auth: false).status == 405)
        }
    }
}
