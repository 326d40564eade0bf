// Job events from the hub: many followers of one job get every change in order from one row read
// per change, a late follower gets the current state first, Last-Event-ID skips what the client
// has, and open streams hold no handler thread.

import Foundation
import Testing
import TestSupport
@testable import HTTP
@testable import Service
import Storage
#if canImport(Glibc)
import Glibc
#endif

/// Polls `condition` for up to `timeout` seconds.
func eventually(timeout: Double = 10, _ condition: () -> Bool) -> Bool {
    let end = Date().addingTimeInterval(timeout)
    while Date() < end {
        if condition() { return true }
        usleep(10_000)
    }
    return condition()
}

/// One SSE event as a client saw it.
struct SeenEvent: Equatable {
    var name: String
    var id: Int?
    var data: String
}

/// A raw event-stream connection; `next()` returns events as they come, nil when the body ends.
final class EventStreamReader {
    let fd: Int32
    let status: Int
    private var reader: SocketReader
    private var chunkLeft = 0
    private var pending: [UInt8] = []
    private var ended = false

    init(_ client: TestClient, path: String, lastEventID: Int? = nil) throws {
        fd = try client.connect()
        var head = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\nAuthorization: Bearer \(client.key!)\r\n"
        if let lastEventID { head += "Last-Event-ID: \(lastEventID)\r\n" }
        try client.sendAll(fd, Array((head + "\r\n").utf8))
        reader = SocketReader(fd: fd)
        status = try reader.readHead().0
    }

    deinit { close(fd) }

    /// The next event (comments skipped), nil at the end of the body.
    func next() throws -> SeenEvent? {
        var name = "message", id: Int?, data: [String] = []
        while true {
            guard let line = try line() else { return nil }
            if line.isEmpty {
                if data.isEmpty && id == nil && name == "message" { continue }
                return SeenEvent(name: name, id: id, data: data.joined(separator: "\n"))
            }
            if line.hasPrefix(":") { continue }
            if line.hasPrefix("event: ") { name = String(line.dropFirst(7)) }
            if line.hasPrefix("id: ") { id = Int(line.dropFirst(4)) }
            if line.hasPrefix("data: ") { data.append(String(line.dropFirst(6))) }
        }
    }

    /// Events until `end` (inclusive) or the body ends.
    func all() throws -> [SeenEvent] {
        var out: [SeenEvent] = []
        while let e = try next() {
            out.append(e)
            if e.name == "end" { break }
        }
        return out
    }

    private func line() throws -> String? {
        while true {
            if let i = pending.firstIndex(of: 10) {
                let l = String(decoding: pending[..<i], as: UTF8.self)
                pending.removeFirst(i + 1)
                return l
            }
            if ended { return nil }
            if chunkLeft == 0 {
                let sizeLine = try reader.readLine()
                if sizeLine.isEmpty { continue }
                guard let size = Int(sizeLine, radix: 16) else { throw TestClientError("bad chunk size \(sizeLine)") }
                if size == 0 { ended = true; continue }
                chunkLeft = size
            }
            pending += try reader.read(chunkLeft)
            chunkLeft = 0
            _ = try reader.readLine()
        }
    }
}

@Suite(.serialized) struct JobEventTests {
    private func setUp(_ h: ServiceHarness, epochs: Int) throws -> (model: String, job: String) {
        let c = h.client
        var rng = SystemRandomNumberGenerator()
        let rows = (0..<400).map { _ in (0..<16).map { _ in Double.random(in: 0...1, using: &rng) } }
        let ds = try c.json("POST", "/v1/datasets", ["name": "d", "features": rows, "labels": (0..<400).map { $0 % 3 }])
        #expect(ds.status == 201, "\(ds.text)")
        let m = try c.json("POST", "/v1/models", ["name": "m", "kind": "pfc", "input_dim": 16, "output_dim": 3, "basis": 32, "iterations": 20])
        let modelID = m.object["id"] as! String
        let j = try c.json("POST", "/v1/models/\(modelID)/train", ["dataset_id": ds.object["id"] as! String, "epochs": epochs, "batch_size": 20])
        #expect(j.status == 202, "\(j.text)")
        return (modelID, j.object["id"] as! String)
    }

    @Test(arguments: Backend.all)
    func everyFollowerGetsEveryChangeInOrderFromOneReadPerChange(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            let (modelID, jobID) = try setUp(h, epochs: 12)
            let readsBefore = h.service.jobEvents.figures.reads
            let streams = try (0..<24).map { _ in try EventStreamReader(h.client, path: "/v1/jobs/\(jobID)/events") }
            #expect(streams.allSatisfy { $0.status == 200 })
            // 24 open streams: other requests are answered (no handler thread is held by a stream).
            #expect(try h.client.request("GET", "/v1/models/\(modelID)").status == 200)
            let seen = try streams.map { try $0.all() }
            let job = try h.waitForJob(jobID)
            #expect(job["state"] as? String == "succeeded")
            let final = try h.store.job(id: jobID, tenantID: try h.tenantID())
            for events in seen {
                #expect(events.last?.name == "end")
                #expect(events.dropLast().allSatisfy { $0.name == "progress" })
                let ids = events.compactMap(\.id)
                #expect(ids.count == events.count)
                #expect(zip(ids, ids.dropFirst()).allSatisfy { $0 < $1 }, "ids in order: \(ids)")
                #expect(ids.last == final.revision)
            }
            // Every follower saw the same events from the moment it joined: the later joiner's
            // sequence is a suffix of the earlier one's.
            let longest = try #require(seen.max { $0.count < $1.count })
            #expect(longest.count >= 4, "events: \(longest.map(\.name))")
            for events in seen { #expect(Array(longest.suffix(events.count)) == events) }
            // One row read per change (plus one when the job got its first follower), not per follower.
            let reads = h.service.jobEvents.figures.reads - readsBefore
            #expect(reads <= final.revision + 2, "reads \(reads) for revision \(final.revision) and 24 followers")
            #expect(eventually { h.service.eventStreams.openCount == 0 })
        }
    }

    @Test(arguments: Backend.all)
    func lateFollowersGetTheCurrentStateAndLastEventIDSkipsWhatTheyHave(backend: Backend) throws {
        try ServiceHarness.with(backend) { h in
            h.service.stopWorkers(deadline: .seconds(5))  // the job stays queued
            let (_, jobID) = try setUp(h, epochs: 1)
            let first = try EventStreamReader(h.client, path: "/v1/jobs/\(jobID)/events")
            let current = try #require(try first.next())
            #expect(current.name == "progress")
            #expect(current.data.contains(#""state":"queued""#))
            let revision = try #require(current.id)
            // A client reconnecting with the id it has gets nothing until the next change.
            let resumed = try EventStreamReader(h.client, path: "/v1/jobs/\(jobID)/events", lastEventID: revision)
            let fresh = try EventStreamReader(h.client, path: "/v1/jobs/\(jobID)/events", lastEventID: revision - 1)
            let junk = try EventStreamReader(h.client, path: "/v1/jobs/\(jobID)/events?x=1", lastEventID: nil)
            #expect(try fresh.next() == current)
            #expect(try junk.next() == current)
            #expect(try h.client.request("DELETE", "/v1/jobs/\(jobID)").status == 200)
            let end = try #require(try resumed.next())
            #expect(end.name == "end")
            #expect(end.data.contains(#""state":"cancelled""#))
            #expect(try #require(end.id) > revision)
            #expect(try resumed.next() == nil)  // the body ended
            #expect(try first.next() == end)
            // A follower of a finished job gets the end event only, with the same id.
            let late = try EventStreamReader(h.client, path: "/v1/jobs/\(jobID)/events", lastEventID: end.id)
            #expect(try late.all() == [end])
        }
    }

    @Test func aBadLastEventIDIsIgnored() throws {
        try ServiceHarness.with(.sqlite) { h in
            h.service.stopWorkers(deadline: .seconds(5))
            let (_, jobID) = try setUp(h, epochs: 1)
            let fd = try h.client.connect()
            defer { close(fd) }
            let head = "GET /v1/jobs/\(jobID)/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(h.key)\r\n"
                + "Last-Event-ID: 99999999999999999999999999\r\n\r\n"
            try h.client.sendAll(fd, Array(head.utf8))
            var reader = SocketReader(fd: fd)
            #expect(try reader.readHead().0 == 200)
            #expect(try reader.readLine().isEmpty == false)  // a chunk: the current state was sent
        }
    }
}
