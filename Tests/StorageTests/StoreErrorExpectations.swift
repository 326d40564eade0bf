// StoreError expectations for the Storage suites (the stores themselves: TestSupport's TestDatabase).
import Testing
@testable import Storage
import TestSupport

/// Asserts that `body` throws a `StoreError` matching `matches`.
func expectStoreError(_ matches: (StoreError) -> Bool, sourceLocation: SourceLocation = #_sourceLocation,
                      _ body: () throws -> Void) {
    do {
        try body()
        Issue.record("expected a StoreError, nothing was thrown", sourceLocation: sourceLocation)
    } catch let error as StoreError {
        #expect(matches(error), "unexpected \(error)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected a StoreError, got \(error)", sourceLocation: sourceLocation)
    }
}

extension StoreError {
    var isConflict: Bool { if case .conflict = self { true } else { false } }
    var isNotFound: Bool { if case .notFound = self { true } else { false } }
    var isLeaseLost: Bool { if case .leaseLost = self { true } else { false } }
    var isJobCancelled: Bool { if case .jobCancelled = self { true } else { false } }
}
