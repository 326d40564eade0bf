import Foundation
import HTTP
import Testing
@testable import Service
@testable import Storage

/// How a job that threw ends: the store's errors as the runners meet them, directly or through
/// `storeCall` (which turns them into HTTP errors first).
@Suite struct JobEndingTests {
    @Test func transientDatabaseErrorsQueueTheJobAgainAndACancelAtTheCommitCancelsIt() {
        let transient: [StoreError] = [.connectionFailed(message: "reset"), .poolExhausted(waitedSeconds: 30),
                                       .timeout(message: "57014", sql: nil), .serializationFailure(message: "40001", sql: nil)]
        for e in transient {
            #expect(JobEnding(after: e) == .requeued, "\(e)")
            #expect(JobEnding(after: APIError.from(e)) == .requeued, "\(e) through storeCall")
        }
        #expect(JobEnding(after: StoreError.jobCancelled(jobID: "j")) == .cancelled)
        #expect(JobEnding(after: APIError.from(.jobCancelled(jobID: "j"))) == .cancelled)
        let lasting: [any Error] = [StoreError.notFound("model m"), StoreError.database(code: "XX000", message: "x", sql: nil),
                                    APIError.invalid("bad"), HTTPError(.serviceUnavailable, message: "not the database"),
                                    JobError("diverged")]
        for e in lasting { #expect(JobEnding(after: e) == .failed, "\(e)") }
    }
}
