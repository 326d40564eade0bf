// ComputeThreads.run on its own helper threads: every chunk once, nested and concurrent callers,
// and the helpers (and threads that ask for it) at the compute priority.
import Dispatch
import Foundation
import Glibc
import Synchronization
import Testing
@testable import Linalg

@Suite struct ComputeThreadsTests {
    /// Every index runs exactly once, from many callers at once, with runs nested inside chunks;
    /// each call returns only after all of its chunks finished (the sums are complete on return).
    @Test func everyChunkRunsOnceAcrossConcurrentAndNestedCalls() {
        let callers = 6, n = 5, inner = 3
        let complete = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: callers) { _ in
            for _ in 0..<20 {
                let counts = Mutex([Int](repeating: 0, count: n * inner))
                ComputeThreads.run(n) { i in
                    ComputeThreads.run(inner) { j in counts.withLock { $0[i * inner + j] += 1 } }
                }
                if counts.withLock({ $0 }) == [Int](repeating: 1, count: n * inner) { complete.add(1, ordering: .relaxed) }
            }
        }
        #expect(complete.load(ordering: .relaxed) == callers * 20)
    }

    /// Chunks that ran on a helper ran at `niceness`; the caller keeps its own priority until it
    /// lowers it itself.
    @Test func helpersAndComputeThreadsRunAtTheComputePriority() throws {
        let caller = pthread_self()
        let callerNice = getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0)
        let seen = Mutex<[Int32]>([])
        // Enough chunks, each long enough, that helpers surely take some.
        ComputeThreads.run(8) { _ in
            if pthread_equal(pthread_self(), caller) == 0 {
                errno = 0
                let nice = getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0)
                seen.withLock { $0.append(nice) }
            }
            usleep(20_000)
        }
        let onHelpers = seen.withLock { $0 }
        #expect(!onHelpers.isEmpty, "no chunk ran on a helper thread")
        #expect(onHelpers.allSatisfy { $0 == ComputeThreads.niceness }, "\(onHelpers)")

        let lowered = Mutex<Int32?>(nil)
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            ComputeThreads.lowerCurrentThreadPriority()
            lowered.withLock { $0 = getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0) }
            done.signal()
        }
        thread.start()
        done.wait()
        #expect(lowered.withLock { $0 } == ComputeThreads.niceness)
        #expect(getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0) == callerNice, "the calling thread keeps its priority")
    }
}
