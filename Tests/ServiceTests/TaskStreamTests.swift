// Streamed tasks off the handler pool: batches are staged durably as the body arrives, and a body
// cut midway or a bad line records nothing and drops what was staged.

import Foundation
import Testing
import TestSupport
@testable import Service
import Storage
#if canImport(Glibc)
import Glibc
#endif

@Suite struct TaskStreamTests {
    private func lines(_ n: Int, from start: Int = 0) -> String {
        (start..<(start + n)).map { i in
            let features = (0..<16).map { j in String(format: "%.3f", Double((i * 7 + j * 3) % 10) / 10) }.joined(separator: ",")
            return #"{"features":[\#(features)],"label":\#(i % 3)}"#
        }.joined(separator: "\n") + "\n"
    }

    private func model(_ h: ServiceHarness) throws -> String {
        let m = try h.client.json("POST", "/v1/models", ["name": "s", "kind": "pfc", "input_dim": 16, "output_dim": 3, "basis": 64, "iterations": 10])
        #expect(m.status == 201, "\(m.text)")
        return m.object["id"] as! String
    }

    private func recorded(_ h: ServiceHarness, _ modelID: String) throws -> (versions: Int, ledger: Int) {
        let tenant = try h.tenantID()
        let versions = try h.store.modelVersions(modelID: modelID, tenantID: tenant).items.count
        let ledger = try h.client.request("GET", "/v1/models/\(modelID)/ledger").object["items"] as? [[String: Any]] ?? []
        return (versions, ledger.count)
    }

    @Test(arguments: Backend.all)
    func aBodyCutMidwayRecordsNothingAndDropsItsStagedBatches(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            let modelID = try model(h)
            let before = try recorded(h, modelID)
            let body = Array(lines(400).utf8)
            do {
                let fd = try h.client.connect()
                defer { close(fd) }
                let head = "POST /v1/models/\(modelID)/tasks/stream?name=cut&batch_size=20&window=2&slide=0.25 HTTP/1.1\r\nHost: x\r\n"
                    + "Authorization: Bearer \(h.key)\r\nContent-Type: application/x-ndjson\r\nContent-Length: \(body.count)\r\n\r\n"
                try h.client.sendAll(fd, Array(head.utf8) + Array(body[..<(body.count / 2)]))
                // Batches are staged as they arrive, before the body ended.
                #expect(eventually(timeout: 60) { ((try? h.store.stagedTaskBatchCount().batches) ?? 0) >= 3 })
            }  // the client goes away with half the body sent
            #expect(eventually(timeout: 60) { (try? h.store.stagedTaskBatchCount().batches) == 0 })
            let after = try recorded(h, modelID)
            #expect(after.versions == before.versions && after.ledger == before.ledger, "\(before) → \(after)")
            // The whole body, sent again, is recorded once, and its staged batches are gone too.
            let ok = try h.client.request("POST", "/v1/models/\(modelID)/tasks/stream?name=whole&batch_size=20&window=2&slide=0.25",
                                          body: Data(body), contentType: "application/x-ndjson")
            #expect(ok.status == 201, "\(ok.text)")
            #expect(ok.object["batches"] as? Int == 20 && ok.object["examples"] as? Int == 400)
            #expect(try recorded(h, modelID).versions == before.versions + 1)
            #expect(try h.store.stagedTaskBatchCount().batches == 0)
        }
    }

    @Test(arguments: Backend.all)
    func aBadLineMidwayIsAnsweredAndRecordsNothing(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            let modelID = try model(h)
            let before = try recorded(h, modelID)
            let body = lines(120) + #"{"features":[1,2],"label":0}"# + "\n" + lines(2000, from: 121)
            let r = try h.client.request("POST", "/v1/models/\(modelID)/tasks/stream?name=bad&batch_size=20",
                                         body: Data(body.utf8), contentType: "application/x-ndjson")
            #expect(r.status == 422)
            #expect(r.errorMessage.contains("NDJSON line 121"), "\(r.text)")
            #expect(try recorded(h, modelID) == before)
            #expect(eventually { (try? h.store.stagedTaskBatchCount().batches) == 0 })
            // A label out of range, an empty body and a missing model answer as before.
            let label = try h.client.request("POST", "/v1/models/\(modelID)/tasks/stream?name=bad",
                                             body: Data((lines(5) + #"{"features":[\#(Array(repeating: "0", count: 16).joined(separator: ","))],"label":7}"#).utf8),
                                             contentType: "application/x-ndjson")
            #expect(label.status == 422 && label.errorMessage.contains("line 6"), "\(label.text)")
            #expect(try h.client.request("POST", "/v1/models/\(modelID)/tasks/stream?name=e", body: Data(), contentType: "application/x-ndjson").status == 422)
            #expect(try h.client.request("POST", "/v1/models/nope/tasks/stream?name=e", body: Data(lines(3).utf8), contentType: "application/x-ndjson").status == 404)
            #expect(try recorded(h, modelID) == before)
        }
    }
}
