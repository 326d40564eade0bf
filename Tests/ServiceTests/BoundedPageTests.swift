// List pages bounded by bytes: a page of large items ends early and `next_offset` continues it, so
// following the pages still returns every item once, in order.
import Foundation
import Testing
import TestSupport
@testable import Service
@testable import Storage

@Suite(.serialized) struct BoundedPageTests {
    /// Items 0..<n of the given sizes, served as the store serves pages.
    func pages(_ sizes: [Int], maxBytes: Int, limit: Int) throws -> (pages: [[Int]], reads: Int) {
        var reads = 0
        func store(_ p: PageRequest) -> Page<Int> {
            reads += 1
            let end = min(sizes.count, p.offset + p.limit)
            let items = p.offset < end ? Array(p.offset..<end) : []
            return Page(items: items, nextOffset: end < sizes.count ? end : nil)
        }
        var result: [[Int]] = [], offset: Int? = 0
        while let o = offset {
            let page = try BoundedPage.read(limit: limit, offset: o, maxBytes: maxBytes, size: { sizes[$0] }, store)
            result.append(page.items)
            offset = page.nextOffset
            #expect(result.count <= sizes.count + 1, "the pages must advance")
            if result.count > sizes.count + 1 { break }
        }
        return (result, reads)
    }

    @Test func pagesEndAtTheByteBudgetAndContinueWhereTheyStopped() throws {
        // Small items: the count limit ends pages, the last one exactly at the end (no empty page after it).
        let small = try pages(Array(repeating: 10, count: 45), maxBytes: 1 << 20, limit: 15)
        #expect(small.pages == [Array(0..<15), Array(15..<30), Array(30..<45)])
        // Large items: each page ends after the item that passes the budget.
        let large = try pages([400, 400, 400, 50, 50, 900, 10], maxBytes: 1000, limit: 1000)
        #expect(large.pages == [[0, 1, 2], [3, 4, 5], [6]])
        // One item larger than the budget still makes progress.
        #expect(try pages([5000, 5000], maxBytes: 1000, limit: 10).pages == [[0], [1]])
        // Every item once, in order, for mixed sizes and limits.
        var g = SystemRandomNumberGenerator()
        for _ in 0..<50 {
            let sizes = (0..<Int.random(in: 0...300, using: &g)).map { _ in Int.random(in: 0...2000, using: &g) }
            let r = try pages(sizes, maxBytes: Int.random(in: 1...20_000, using: &g), limit: Int.random(in: 1...1000, using: &g))
            #expect(r.pages.flatMap { $0 } == Array(0..<sizes.count))
        }
        // A thousand small items are read in a few chunks, not one query each.
        #expect(try pages(Array(repeating: 100, count: 1000), maxBytes: 8 << 20, limit: 1000).reads <= 8)
    }

    /// Over a real socket: evaluations of a 1000-class model carry a 1000 × 1000 confusion matrix
    /// each; a page of them stops at the budget and the pages together list every one.
    @Test(arguments: Backend.all)
    func largeEvaluationsArePagedByBytes(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            let c = h.client
            let m = try c.json("POST", "/v1/models", ["name": "wide", "kind": "pfc", "input_dim": 1, "output_dim": 1000, "basis": 1, "iterations": 1])
            #expect(m.status == 201, "\(m.text)")
            let model = m.object["id"] as! String
            let ds = try c.json("POST", "/v1/datasets", ["name": "one", "features": [[0.5]], "labels": [999]])
            #expect(ds.status == 201, "\(ds.text)")
            var ids: [String] = []
            for _ in 0..<6 {
                let e = try c.json("POST", "/v1/models/\(model)/evaluate", ["dataset_id": ds.object["id"] as! String, "version": 0])
                #expect(e.status == 200, "\(e.text.prefix(300))")
                ids.append(e.object["id"] as? String ?? "")
            }
            var seen: [String] = [], offset: Int? = 0, pages = 0
            while let o = offset, pages < 10 {
                let r = try c.request("GET", "/v1/models/\(model)/versions/0/evaluations?limit=1000&offset=\(o)")
                #expect(r.status == 200)
                #expect(r.body.count < BoundedPage.maxBytes + (8 << 20), "one page stays near the budget: \(r.body.count) bytes")
                let items = r.object["items"] as? [[String: Any]] ?? []
                seen += items.compactMap { $0["id"] as? String }
                offset = r.object["next_offset"] as? Int
                pages += 1
            }
            #expect(pages >= 2, "six results of megabytes each cannot fit one page")
            #expect(seen == ids)
            // The version's own page lists summaries only: small, whatever the results hold.
            let v = try c.request("GET", "/v1/models/\(model)/versions/0")
            #expect(v.status == 200 && v.body.count < 20_000, "\(v.body.count) bytes")
            #expect((v.object["evaluations"] as? [[String: Any]])?.count == 6)
        }
    }
}
